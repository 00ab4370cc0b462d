package rtfs

import (
	"context"
	"testing"
)

const fibSrc = `(defn fib [n] (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))`

func benchEval(b *testing.B, setup, expr, want string) {
	in := New(Options{Limits: Limits{MaxSteps: 1 << 40, MaxCollection: 10_000_000}})
	ctx := context.Background()
	if setup != "" {
		if _, err := in.EvalString(ctx, setup, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	forms, err := ReadString(expr, "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		v, err := in.EvalForms(ctx, forms)
		if err != nil {
			b.Fatal(err)
		}
		if got := Print(v); got != want {
			b.Fatalf("got %s, want %s", got, want)
		}
	}
}

// BenchmarkFib25 is naive recursive (fib 25): 242785 calls.
func BenchmarkFib25(b *testing.B) { benchEval(b, fibSrc, "(fib 25)", "75025") }

func goFib(n int64) int64 {
	if n < 2 {
		return n
	}
	return goFib(n-1) + goFib(n-2)
}

// BenchmarkFib25Go is the same computation in plain Go.
func BenchmarkFib25Go(b *testing.B) {
	for b.Loop() {
		if goFib(25) != 75025 {
			b.Fatal("wrong")
		}
	}
}

// BenchmarkPipeline100k squares 100000 integers, keeps the even squares and
// sums them.
func BenchmarkPipeline100k(b *testing.B) {
	benchEval(b, "", "(reduce + 0 (filter even? (map (fn [x] (* x x)) (range 100000))))", "166661666700000")
}

// BenchmarkPipeline100kGo does the same work in plain Go on the same value
// representation's Go equivalent (slices of int64).
func BenchmarkPipeline100kGo(b *testing.B) {
	for b.Loop() {
		xs := make([]int64, 100000)
		for i := range xs {
			xs[i] = int64(i)
		}
		sq := make([]int64, len(xs))
		for i, x := range xs {
			sq[i] = x * x
		}
		var ev []int64
		for _, x := range sq {
			if x%2 == 0 {
				ev = append(ev, x)
			}
		}
		var sum int64
		for _, x := range ev {
			sum += x
		}
		if sum != 166661666700000 {
			b.Fatal("wrong", sum)
		}
	}
}

// BenchmarkIntoMap100k builds a 100000-entry map with into, which must stay
// linear (the map is built in place, not copied per entry).
func BenchmarkIntoMap100k(b *testing.B) {
	benchEval(b, "", "(count (into {} (map (fn [i] [i (* i i)]) (range 100000))))", "100000")
}
