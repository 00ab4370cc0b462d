package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// ErrInvalid is wrapped by every validation failure.
var ErrInvalid = errors.New("document does not match the API definition")

// Violation is one place where a document departs from its definition.
type Violation struct {
	// Path is the dotted path of the offending value, e.g.
	// "machine-config.mem_size_mib" or "drives[0].is_read_only"; empty for
	// the document itself.
	Path string
	// Msg says what is wrong.
	Msg string
}

func (v Violation) String() string {
	if v.Path == "" {
		return v.Msg
	}
	return v.Path + ": " + v.Msg
}

// ValidationError lists every violation found in one document.
type ValidationError struct {
	// Definition is the definition the document was checked against.
	Definition string
	Violations []Violation
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.String()
	}
	return fmt.Sprintf("%s: %s: %s", ErrInvalid, e.Definition, strings.Join(parts, "; "))
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Has reports whether a violation is at path.
func (e *ValidationError) Has(path string) bool {
	for _, v := range e.Violations {
		if v.Path == path {
			return true
		}
	}
	return false
}

// Validate checks a JSON document against the named definition (such as
// "FullVmConfiguration" or "Drive").
func (a *API) Validate(definition string, doc []byte) error {
	s := a.definitions[definition]
	if s == nil {
		return fmt.Errorf("contract: no definition %q", definition)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return &ValidationError{Definition: definition, Violations: []Violation{{Msg: "not JSON: " + err.Error()}}}
	}
	if dec.More() {
		return &ValidationError{Definition: definition, Violations: []Violation{{Msg: "trailing data after the JSON value"}}}
	}
	w := walker{api: a}
	w.value("", s, v)
	if len(w.out) > 0 {
		return &ValidationError{Definition: definition, Violations: w.out}
	}
	return nil
}

// ValidateValue marshals v to JSON and validates it.
func (a *API) ValidateValue(definition string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("contract: %w", err)
	}
	return a.Validate(definition, b)
}

type walker struct {
	api *API
	out []Violation
}

func (w *walker) fail(path, format string, args ...any) {
	w.out = append(w.out, Violation{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (w *walker) resolve(path string, s *Schema) *Schema {
	for depth := 0; s != nil && s.Ref != ""; depth++ {
		name, ok := strings.CutPrefix(s.Ref, "#/definitions/")
		if !ok || depth > 32 {
			w.fail(path, "unsupported $ref %q", s.Ref)
			return nil
		}
		next := w.api.definitions[name]
		if next == nil {
			w.fail(path, "$ref to missing definition %q", name)
			return nil
		}
		s = next
	}
	return s
}

func (w *walker) value(path string, s *Schema, v any) {
	s = w.resolve(path, s)
	if s == nil {
		return
	}
	if v == nil {
		w.fail(path, "null where %s is expected", describe(s))
		return
	}
	if len(s.Enum) > 0 && !inEnum(s.Enum, v) {
		w.fail(path, "%s is not one of %v", show(v), s.Enum)
	}
	switch s.Type {
	case "object", "":
		if obj, ok := v.(map[string]any); ok {
			w.object(path, s, obj)
		} else if s.Type == "object" || len(s.Properties) > 0 {
			w.fail(path, "%s, want an object", show(v))
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			w.fail(path, "%s, want an array", show(v))
			return
		}
		for i, item := range arr {
			w.value(fmt.Sprintf("%s[%d]", path, i), s.Items, item)
		}
	case "string":
		if _, ok := v.(string); !ok {
			w.fail(path, "%s, want a string", show(v))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			w.fail(path, "%s, want a boolean", show(v))
		}
	case "integer", "number":
		w.number(path, s, v)
	default:
		w.fail(path, "unsupported schema type %q", s.Type)
	}
}

func (w *walker) object(path string, s *Schema, obj map[string]any) {
	for _, name := range s.Required {
		val, ok := obj[name]
		if !ok {
			w.fail(join(path, name), "required property is missing")
		} else if val == nil {
			w.fail(join(path, name), "required property is null")
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		val := obj[k]
		if prop, ok := s.Properties[k]; ok {
			if val != nil {
				w.value(join(path, k), prop, val)
			}
			continue
		}
		switch ap := s.AdditionalProperties; {
		case ap == nil || !ap.Allowed:
			w.fail(join(path, k), "unknown property (the definition names %s)", names(s.Properties))
		case ap.Schema != nil:
			w.value(join(path, k), ap.Schema, val)
		}
	}
}

func (w *walker) number(path string, s *Schema, v any) {
	n, ok := v.(json.Number)
	if !ok {
		w.fail(path, "%s, want %s", show(v), s.Type)
		return
	}
	f, err := n.Float64()
	if err != nil {
		w.fail(path, "%s is not a number", n)
		return
	}
	if s.Type == "integer" {
		if _, err := n.Int64(); err != nil || f != math.Trunc(f) {
			w.fail(path, "%s, want an integer", n)
			return
		}
		if s.Format == "int32" && (f < math.MinInt32 || f > math.MaxInt32) {
			w.fail(path, "%s is outside int32", n)
		}
	}
	if m := s.Minimum; m != nil && (f < *m || (s.ExclusiveMinimum && f == *m)) {
		w.fail(path, "%s is below the minimum %v", n, *m)
	}
	if m := s.Maximum; m != nil && (f > *m || (s.ExclusiveMaximum && f == *m)) {
		w.fail(path, "%s is above the maximum %v", n, *m)
	}
}

func inEnum(enum []any, v any) bool {
	for _, e := range enum {
		if fmt.Sprint(e) == fmt.Sprint(v) {
			return true
		}
	}
	return false
}

func describe(s *Schema) string {
	if s.Type == "" {
		return "a value"
	}
	return "a value of type " + s.Type
}

func show(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case json.Number:
		return "number " + x.String()
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%v", v)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func names(m map[string]*Schema) string {
	if len(m) == 0 {
		return "no properties"
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
