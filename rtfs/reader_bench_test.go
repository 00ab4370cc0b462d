package rtfs

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// planLike returns about n bytes of generated plan-like RTFS: steps with
// capability calls, let bindings, maps, vectors, strings and comments.
func planLike(n int) []byte {
	var b strings.Builder
	b.WriteString(";; generated plan\n(plan \"bench\"\n  :intent {:goal \"summarise\" :owner :agent.bench}\n  :body (do\n")
	for i := 0; b.Len() < n-200; i++ {
		fmt.Fprintf(&b, "    ;; step %d\n    (step \"fetch-%d\" [:effects [[:network {:domains [\"api%d.example.com\"] :methods [:GET]}]] :resources {:max_time_ms 5000}]\n", i, i, i)
		fmt.Fprintf(&b, "      (let [resp (call :ccos.network.http-fetch {:url \"https://api%d.example.com/v1/items?page=%d\" :timeout 2.5e3})\n", i, i)
		fmt.Fprintf(&b, "            items (get-in resp [:body :items])]\n        (reduce + 0 (map #(* %% 2) (filter even? [1 2 3 %d 0x%x -7 1e5])))))\n", i, i)
	}
	b.WriteString("    :done))\n")
	return []byte(b.String())
}

func BenchmarkReadPlan1MB(b *testing.B) {
	src := planLike(1 << 20)
	if _, err := Read(src, "plan", ReadOptions{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(src)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Read(src, "plan", ReadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSONBaseline1MB decodes a JSON document of the same shape and
// size with encoding/json, as a side-by-side baseline for the reader.
func BenchmarkJSONBaseline1MB(b *testing.B) {
	var items []map[string]any
	size := 0
	for i := 0; size < 1<<20; i++ {
		item := map[string]any{
			"step": fmt.Sprintf("fetch-%d", i), "comment": fmt.Sprintf("step %d", i),
			"effects":   []any{[]any{"network", map[string]any{"domains": []string{fmt.Sprintf("api%d.example.com", i)}, "methods": []string{"GET"}}}},
			"resources": map[string]any{"max_time_ms": 5000},
			"call":      map[string]any{"url": fmt.Sprintf("https://api%d.example.com/v1/items?page=%d", i, i), "timeout": 2.5e3},
			"path":      []string{"body", "items"}, "data": []any{1, 2, 3, i, i, -7, 1e5},
		}
		items = append(items, item)
		enc, _ := json.Marshal(item)
		size += len(enc)
	}
	src, _ := json.Marshal(items)
	b.SetBytes(int64(len(src)))
	b.ResetTimer()
	for b.Loop() {
		var v any
		if err := json.Unmarshal(src, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadSeedConfig(b *testing.B) {
	src, err := os.ReadFile("testdata/seed_agent_config.rtfs")
	if err != nil {
		b.Fatal(err)
	}
	// The seed as published has a stray ')' (see TestSeedStrayParen); the
	// benchmark reads the error path too, which is what users hit.
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		Read(src, "seed", ReadOptions{})
	}
}

func BenchmarkPrintPlan1MB(b *testing.B) {
	s, err := Read(planLike(1<<20), "plan", ReadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		for _, v := range s.Forms {
			_ = Print(v)
		}
	}
}

func BenchmarkFormatPlan1MB(b *testing.B) {
	src := planLike(1 << 20)
	s, err := Read(src, "plan", ReadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(src)))
	b.ResetTimer()
	for b.Loop() {
		_ = Format(s, DefaultWidth)
	}
}
