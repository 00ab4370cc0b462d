package capability

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ccos-project/ccos/rtfs"
)

func TestBuiltins(t *testing.T) {
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := Builtins(func() time.Time { return fixed })
	tests := []struct {
		id   string
		args string
		want string
		err  bool
	}{
		{"ccos.echo", `[{:a 1}]`, "{:a 1}", false},
		{"ccos.echo", `[1 2]`, "", true},
		{"ccos.math.add", `[1 2 3]`, "6", false},
		{"ccos.math.add", `[1 2.5]`, "3.5", false},
		{"ccos.math.add", `[9223372036854775807 1]`, "", true},
		{"ccos.math.add", `[1 "2"]`, "", true},
		{"ccos.string.concat", `["a" "b"]`, `"ab"`, false},
		{"ccos.string.concat", `["a" 1]`, "", true},
		{"ccos.system.current-time", `[]`, "2026-01-02T03:04:05Z", false},
	}
	for _, tc := range tests {
		c, err := r.Lookup(tc.id)
		if err != nil {
			t.Fatal(err)
		}
		args, _ := rtfs.ReadOne(tc.args, "")
		got, err := c.Fn(context.Background(), args.(*rtfs.Vector).Items)
		if tc.err {
			if !errors.Is(err, ErrArgs) {
				t.Errorf("%s %s: err %v, want ErrArgs", tc.id, tc.args, err)
			}
			continue
		}
		if err != nil || rtfs.Print(got) != tc.want {
			t.Errorf("%s %s = %v, %v; want %s", tc.id, tc.args, got, err, tc.want)
		}
	}
	if _, err := r.Lookup("ccos.nope"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown: %v", err)
	}
}
