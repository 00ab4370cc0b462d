package wasm

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/ccos-project/ccos/sandbox"
)

// benchModules are the modules benchmarked: the test guest always, the
// real guest when it was generated into this build.
func benchModules() []struct {
	name   string
	source ModuleSource
} {
	mods := []struct {
		name   string
		source ModuleSource
	}{{"testguest", FileModule(testGuest)}}
	if _, err := EmbeddedModule(); err == nil {
		mods = append(mods, struct {
			name   string
			source ModuleSource
		}{"ccos-guest", EmbeddedModule})
	}
	return mods
}

// BenchmarkWasmColdStart measures one sandbox's life from a compiled
// module kept by the provider: instantiate, one exchange on the control
// channel, exit. For the test guest the exchange is an echo; for the real
// guest it is reading its hello frame, after which the host closes the
// channel and the guest exits.
func BenchmarkWasmColdStart(b *testing.B) {
	for _, m := range benchModules() {
		b.Run(m.name, func(b *testing.B) {
			p := New(Options{Source: m.source, CacheDir: testCache})
			defer p.Close(context.Background())
			if _, err := p.prepare(context.Background()); err != nil {
				b.Fatal(err)
			}
			exchange := echoOnce
			if m.name == "ccos-guest" {
				exchange = readHello
			}
			b.ResetTimer()
			for b.Loop() {
				sb, err := p.Start(context.Background(), sandbox.Spec{})
				if err != nil {
					b.Fatal(err)
				}
				exchange(b, sb)
				sb.Control().Close()
				sb.Wait()
			}
		})
	}
}

func echoOnce(b *testing.B, sb sandbox.Sandbox) {
	if _, err := io.WriteString(sb.Control(), "echo\nping\n"); err != nil {
		b.Fatal(err)
	}
	if line, err := bufio.NewReader(sb.Control()).ReadString('\n'); err != nil || line != "ping\n" {
		b.Fatalf("echo: %q, %v", line, err)
	}
}

func readHello(b *testing.B, sb sandbox.Sandbox) {
	var n uint32
	if err := binary.Read(sb.Control(), binary.BigEndian, &n); err != nil || n > 1<<16 {
		b.Fatalf("hello frame length %d, %v", n, err)
	}
	if _, err := io.ReadFull(sb.Control(), make([]byte, n)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWasmCompile measures compiling the guest module in a new
// runtime: "cold" without any cache, "disk-cache" from a warm on-disk
// compilation cache (what a new ccos process pays on its first start).
func BenchmarkWasmCompile(b *testing.B) {
	ctx := context.Background()
	for _, m := range benchModules() {
		mod, err := m.source()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(m.name+"/cold", func(b *testing.B) {
			for b.Loop() {
				compileOnce(b, wazero.NewRuntimeConfig(), mod.Wasm)
			}
		})
		b.Run(m.name+"/disk-cache", func(b *testing.B) {
			cache, err := wazero.NewCompilationCacheWithDir(testCache)
			if err != nil {
				b.Fatal(err)
			}
			defer cache.Close(ctx)
			compileOnce(b, wazero.NewRuntimeConfig().WithCompilationCache(cache), mod.Wasm)
			b.ResetTimer()
			for b.Loop() {
				cache, err := wazero.NewCompilationCacheWithDir(testCache)
				if err != nil {
					b.Fatal(err)
				}
				compileOnce(b, wazero.NewRuntimeConfig().WithCompilationCache(cache), mod.Wasm)
				cache.Close(ctx)
			}
		})
	}
}

func compileOnce(b *testing.B, cfg wazero.RuntimeConfig, wasm []byte) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	defer rt.Close(ctx)
	if _, err := rt.CompileModule(ctx, wasm); err != nil {
		b.Fatal(err)
	}
}
