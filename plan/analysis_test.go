package plan

import (
	"strings"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

func TestStepAnalysis(t *testing.T) {
	p, err := Read([]byte(`(plan "a" :body
  (do (defn helper [x] (call :cap.b x))
      (defn loop-fn [n] (if (> n 0) (loop-fn (dec n)) (call :cap.c)))
      (def g (fn [] (call :cap.g)))
      (step "one" [:effects [[:network {:domains ["a.com"] :methods [:GET]}] :time]
                   :resources {:max_time_ms 900}
                   :compensate (call :cap.undo)]
        (call :cap.a 1) (helper 2) (map helper [1 2]))
      (step "two" {:resources {:max_time_ms 5}} (loop-fn 3) (g))
      (step "three" (let [c :cap.x] (call c)) (step "inner" (call :cap.i)))
      (call :cap.top)))`), "a.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	one, two, three, inner := p.Steps[0], p.Steps[1], p.Steps[2], p.Steps[3]
	if got := strings.Join(one.Capabilities(), ","); got != "cap.a,cap.b,cap.undo" {
		t.Errorf("one reaches %s", got)
	}
	if one.Calls[1].Via[0] != "helper" {
		t.Errorf("cap.b via %v", one.Calls[1].Via)
	}
	o := one.Options
	if !o.Declared || len(o.Effects) != 2 || o.Effects[0].Domains[0] != "a.com" || o.Effects[0].Methods[0] != "GET" ||
		o.Effects[1].Kind != "time" || o.MaxTimeMS != 900 || o.Compensate == nil {
		t.Errorf("one options: %+v", o)
	}
	if got := strings.Join(two.Capabilities(), ","); got != "cap.c,cap.g" || two.Options.MaxTimeMS != 5 || two.Options.Declared {
		t.Errorf("two reaches %s, options %+v", got, two.Options)
	}
	if len(three.Dynamic) != 1 || len(three.Calls) != 0 {
		t.Errorf("three: calls %v dynamic %v", three.Calls, three.Dynamic)
	}
	if got := strings.Join(inner.Capabilities(), ","); got != "cap.i" {
		t.Errorf("inner reaches %s", got)
	}
	if len(p.Unstepped) != 1 || p.Unstepped[0].Capability != "cap.top" {
		t.Errorf("unstepped: %v", p.Unstepped)
	}
}

func TestStepOptionErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{`(step "s" [:effects [:network] :colour :red] 1)`, "unknown step option :colour"},
		{`(step "s" [:effects [:teleport]] 1)`, "unknown effect :teleport"},
		{`(step "s" [:effects :time] 1)`, ":effects must be a vector"},
		{`(step "s" [:effects [[:network {:hosts ["a"]}]]] 1)`, "unknown key :hosts in a :network effect"},
		{`(step "s" [:effects [[:network {:domains [1]}]]] 1)`, "expected a string or keyword"},
		{`(step "s" [:resources {:max_time_ms -1}] 1)`, ":max_time_ms must be a positive integer"},
		{`(step "s" [:resources 5] 1)`, ":resources must be a map"},
		{`(step "s" [:effects] 1)`, "odd number of forms"},
		{`(step "s" [:effects [[]]] 1)`, "an effect is [:kind {scope}]"},
		{`(step "s" [:retry -1] 1)`, ":retry must be an integer from 0 to 10"},
		{`(step "s" [:retry 11] 1)`, ":retry must be an integer from 0 to 10"},
		{`(step "s" [:retry "twice"] 1)`, ":retry must be an integer"},
	}
	for _, tc := range tests {
		if _, err := Read([]byte(tc.src), "p.rtfs"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.src, err, tc.want)
		}
	}
	if p, err := Read([]byte(`(step "s" [:retry 3 :compensate (undo)] 1)`), "p.rtfs"); err != nil || p.Steps[0].Options.Retry != 3 {
		t.Errorf(":retry 3: %v %+v", err, p)
	}
	// A vector body that is not options stays the body.
	p, err := Read([]byte(`(step "s" [1 2])`), "p.rtfs")
	if err != nil || p.Steps[0].Options.Declared {
		t.Errorf("vector body: %v %+v", err, p)
	}
}

// Every call site a step reaches is kept with its argument forms as
// written, through the plan's functions too.
func TestCallSites(t *testing.T) {
	p, err := Read([]byte(`(do
  (defn get-it [u] (call :ccos.network.http-fetch u))
  (step "s"
    (call :ccos.network.http-fetch "https://a.example/x" {:method "POST"})
    (get-it "https://b.example/")
    (call :ccos.echo 1)))`), "p.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	sites := p.Steps[0].Sites
	if len(sites) != 3 {
		t.Fatalf("%d sites: %+v", len(sites), sites)
	}
	if s := sites[0]; s.Capability != "ccos.network.http-fetch" || len(s.Args) != 2 || rtfs.Print(s.Args[0]) != `"https://a.example/x"` || s.Span.Start.Line != 4 {
		t.Errorf("site 0: %+v", s)
	}
	if s := sites[1]; len(s.Via) != 1 || s.Via[0] != "get-it" || rtfs.Print(s.Args[0]) != "u" {
		t.Errorf("site 1 (through get-it): %+v", s)
	}
	if len(p.Steps[0].Calls) != 2 {
		t.Errorf("calls: %+v", p.Steps[0].Calls)
	}
}
