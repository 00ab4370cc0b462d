package chain

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// benchAppend appends b.N events from workers concurrent appenders and
// reports durable appends per second.
func benchAppend(b *testing.B, store Store, workers int) {
	rec, err := NewRecorder(store, nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= b.N; i = int(next.Add(1)) {
				if _, err := rec.Append(context.Background(), testEvent(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkAppend(b *testing.B) {
	cases := []struct {
		name    string
		workers int
		open    func(dir string) (Store, error)
	}{
		{"in_memory", 1, func(string) (Store, error) { return NewMemoryStore(), nil }},
		{"append_file/group/1", 1, func(d string) (Store, error) { return OpenFile(filepath.Join(d, "c"), FileOptions{}) }},
		{"append_file/group/8", 8, func(d string) (Store, error) { return OpenFile(filepath.Join(d, "c"), FileOptions{}) }},
		{"append_file/fsync-each/8", 8, func(d string) (Store, error) { return OpenFile(filepath.Join(d, "c"), FileOptions{MaxBatch: 1}) }},
		{"sqlite/1", 1, func(d string) (Store, error) { return OpenSQLite(filepath.Join(d, "c.db"), SQLiteOptions{}) }},
		{"sqlite/8", 8, func(d string) (Store, error) { return OpenSQLite(filepath.Join(d, "c.db"), SQLiteOptions{}) }},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			s, err := tc.open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			benchAppend(b, s, tc.workers)
		})
	}
}

// BenchmarkVerify verifies a 10,000-event chain with a checkpoint every
// 1,000 events and reports events verified per second.
func BenchmarkVerify(b *testing.B) {
	signer, verifier := testKey(b)
	store := NewMemoryStore()
	rec, err := NewRecorder(store, signer, Options{CheckpointEvery: 1000})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 10000; i++ {
		if _, err := rec.Append(context.Background(), testEvent(i)); err != nil {
			b.Fatal(err)
		}
	}
	var events uint64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := Verify(store, verifier)
		if err != nil {
			b.Fatal(err)
		}
		events += rep.Events
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
