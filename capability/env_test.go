package capability

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

func TestGetEnv(t *testing.T) {
	environ := map[string]string{"LANG": "C.UTF-8", "HOME": "/root", "SECRET": "s3"}
	lookup := func(k string) (string, bool) { v, ok := environ[k]; return v, ok }
	get := func(o Options, ctx context.Context, name rtfs.Value) (rtfs.Value, error) {
		o.LookupEnv = lookup
		c, err := BuiltinsWith(o).Lookup("ccos.system.get-env")
		if err != nil {
			t.Fatal(err)
		}
		return c.Fn(ctx, []rtfs.Value{name})
	}
	bg := context.Background()
	named := Options{EnvVars: []string{"LANG", "TZ"}}
	tests := []struct {
		name    string
		o       Options
		ctx     context.Context
		arg     rtfs.Value
		want    string
		errWant string // part of the error; "" for success
	}{
		{"named and set", named, bg, rtfs.String{V: "LANG"}, `"C.UTF-8"`, ""},
		{"keyword name", named, bg, rtfs.Keyword{Name: "LANG"}, `"C.UTF-8"`, ""},
		{"named but unset", named, bg, rtfs.String{V: "TZ"}, "nil", ""},
		{"not named", named, bg, rtfs.String{V: "SECRET"}, "", "SECRET is not in the agent config's :capabilities :env :vars"},
		{"nothing configured", Options{}, bg, rtfs.String{V: "LANG"}, "", `add :capabilities :env {:enabled true :vars ["LANG"]}`},
		{"outside the step's scope", named, WithScope(bg, Scope{Step: "s", Effects: []Effect{{Kind: EffectEnv, Vars: []string{"TZ"}}}}),
			rtfs.String{V: "LANG"}, "", "not in the step's admitted effect"},
		{"within the step's scope", named, WithScope(bg, Scope{Step: "s", Effects: []Effect{{Kind: EffectEnv, Vars: []string{"LANG"}}}}),
			rtfs.String{V: "LANG"}, `"C.UTF-8"`, ""},
	}
	for _, tc := range tests {
		v, err := get(tc.o, tc.ctx, tc.arg)
		if tc.errWant != "" {
			if !errors.Is(err, ErrNoEnvConfigured) || !strings.Contains(err.Error(), tc.errWant) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.errWant)
			}
			continue
		}
		if err != nil || rtfs.Print(v) != tc.want {
			t.Errorf("%s: %v, %v; want %s", tc.name, v, err, tc.want)
		}
	}
	if _, err := get(named, bg, rtfs.Int{V: 1}); !errors.Is(err, ErrArgs) {
		t.Errorf("non-string name: %v", err)
	}
}
