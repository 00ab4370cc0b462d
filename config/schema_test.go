package config

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

func TestSchemaParses(t *testing.T) {
	s, err := LoadSchema()
	if err != nil {
		t.Fatal(err)
	}
	if s.Defs[len(s.Defs)-1].Name != "AgentConfig" || s.Root.Op != rtfs.TypeRecord {
		t.Fatalf("root is %s", s.Defs[len(s.Defs)-1].Name)
	}
}

func TestParseSchemaErrors(t *testing.T) {
	tests := map[string]string{
		`(def A`:                   "",
		`(defn A [] 1)`:            "schema forms are (def Name type)",
		`(def "A" string)`:         "needs a symbol name",
		`(def A [:vector Nope])`:   "unknown type name Nope",
		`;; only a comment` + "\n": "defines no type",
	}
	for src, want := range tests {
		_, err := parseSchema([]byte(src), "s.rtfs")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseSchema(%q) = %v, want an error containing %q", src, err, want)
		}
	}
}

// unwrap strips the forms that do not change the shape of a value.
func unwrap(t *rtfs.Type) *rtfs.Type {
	for {
		switch t.Op {
		case rtfs.TypeOptional, rtfs.TypeDefault:
			t = t.Elems[0]
		case rtfs.TypeAnd:
			t = t.Elems[0]
		default:
			return t
		}
	}
}

// compareModel checks that a Go type and a schema type have the same shape:
// struct fields and record keys agree one to one.
func compareModel(t *testing.T, path string, gt reflect.Type, st *rtfs.Type) {
	st = unwrap(st)
	if gt.Kind() == reflect.Pointer {
		gt = gt.Elem()
	}
	switch {
	case gt == reflect.TypeFor[Effect]():
		if st.Op != rtfs.TypeTuple {
			t.Errorf("%s: Effect needs a tuple type", path)
		}
	case gt.Kind() == reflect.Struct:
		if st.Op != rtfs.TypeRecord {
			t.Errorf("%s: Go struct %s but schema %s", path, gt, rtfs.DescribeType(st))
			return
		}
		fields := map[string]*rtfs.Type{}
		for _, f := range st.Fields {
			fields[f.Key] = f.Type
		}
		seen := map[string]bool{}
		for i := range gt.NumField() {
			tag := gt.Field(i).Tag.Get("rtfs")
			if tag == "" {
				continue
			}
			seen[tag] = true
			ft, ok := fields[tag]
			if !ok {
				t.Errorf("%s: Go field %s has tag %q, which the schema lacks", path, gt.Field(i).Name, tag)
				continue
			}
			compareModel(t, path+"."+tag, gt.Field(i).Type, ft)
		}
		for k := range fields {
			if !seen[k] {
				t.Errorf("%s: schema key :%s has no Go field", path, k)
			}
		}
	case gt.Kind() == reflect.Slice:
		if st.Op != rtfs.TypeVector {
			t.Errorf("%s: Go slice but schema %s", path, rtfs.DescribeType(st))
			return
		}
		compareModel(t, path+".0", gt.Elem(), st.Elems[0])
	case gt.Kind() == reflect.Map:
		if st.Op != rtfs.TypeMapOf {
			t.Errorf("%s: Go map but schema %s", path, rtfs.DescribeType(st))
			return
		}
		compareModel(t, path+".*", gt.Elem(), st.Elems[1])
	}
}

func TestModelMatchesSchema(t *testing.T) {
	s, err := LoadSchema()
	if err != nil {
		t.Fatal(err)
	}
	compareModel(t, "config", reflect.TypeFor[Config](), s.Root)
}

func TestJSONSchema(t *testing.T) {
	b, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	get := func(v any, keys ...string) any {
		for _, k := range keys {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		}
		return v
	}
	props := get(doc, "properties").(map[string]any)
	var keys []string
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := "agent-id capabilities causal_chain features governance marketplace microvm network orchestrator profile secrets version"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("top-level properties = %s", got)
	}
	checks := []struct {
		path []string
		want any
	}{
		{[]string{"$schema"}, "https://json-schema.org/draft/2020-12/schema"},
		{[]string{"additionalProperties"}, false},
		{[]string{"properties", "microvm", "$ref"}, "#/$defs/MicroVM"},
		{[]string{"$defs", "MicroVM", "properties", "resources", "properties", "vcpus", "minimum"}, 1.0},
		{[]string{"$defs", "MicroVM", "properties", "resources", "properties", "vcpus", "maximum"}, 32.0},
		{[]string{"$defs", "MicroVM", "properties", "resources", "properties", "vcpus", "type"}, "integer"},
		{[]string{"$defs", "MicroVM", "properties", "resources", "properties", "vcpus", "default"}, 1.0},
		{[]string{"$defs", "MicroVM", "properties", "resources", "properties", "vcpus", "x-ccos-code"}, "INVALID_VCPUS"},
		{[]string{"$defs", "Orchestrator", "properties", "isolation", "properties", "mode", "default"}, "wasm"},
		{[]string{"$defs", "Network", "properties", "egress", "properties", "allow-domains", "$ref"}, "#/$defs/Domains"},
		{[]string{"$defs", "Domains", "items", "$ref"}, "#/$defs/Domain"},
		{[]string{"$defs", "Effect", "minItems"}, 2.0},
	}
	for _, c := range checks {
		if got := get(doc, c.path...); got != c.want {
			t.Errorf("%s = %v, want %v", strings.Join(c.path, "/"), got, c.want)
		}
	}
	if req := get(doc, "required"); req == nil || len(req.([]any)) != 2 {
		t.Errorf("required = %v, want version and agent-id", req)
	}
}

// allowedPreludeHeads are the forms the profile prelude may call: the core
// forms any RTFS evaluator has, and the profiles themselves.
var allowedPreludeHeads = map[string]bool{
	"defn": true, "let": true, "fn": true, "assoc-in": true, "merge": true, "if": true, "get": true,
	"profile:minimal": true, "profile:microvm-min": true,
}

func TestPreludeShape(t *testing.T) {
	forms, err := Prelude()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"profile:minimal":           "[agent-id]",
		"profile:networked":         "[agent-id allowed-domains]",
		"profile:microvm-min":       "[agent-id]",
		"profile:microvm-networked": "[agent-id allowed-domains]",
	}
	for _, f := range forms {
		l := f.(*rtfs.List)
		if rtfs.HeadName(l) != "defn" || len(l.Items) < 4 {
			t.Fatalf("prelude form %s is not (defn name [params] body)", rtfs.Describe(f))
		}
		name := l.Items[1].(rtfs.Symbol).Name
		if got := rtfs.Print(l.Items[2]); got != want[name] {
			t.Errorf("%s params = %s, want %s", name, got, want[name])
		}
		delete(want, name)
		walkLists(l, func(head string) {
			if !allowedPreludeHeads[head] {
				t.Errorf("%s calls %s, which is not a core form", name, head)
			}
		})
	}
	if len(want) != 0 {
		t.Errorf("prelude lacks %v", want)
	}
}

func walkLists(v rtfs.Value, f func(head string)) {
	switch x := v.(type) {
	case *rtfs.List:
		f(rtfs.HeadName(x))
		for _, it := range x.Items[1:] {
			walkLists(it, f)
		}
	case *rtfs.Vector:
		for _, it := range x.Items {
			walkLists(it, f)
		}
	case *rtfs.Map:
		for _, it := range x.Vals() {
			walkLists(it, f)
		}
	}
}
