package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/ccos-project/ccos/rtfs"
)

// spanIndex maps dotted field paths to where their values were written.
type spanIndex struct {
	root  rtfs.Span
	paths map[string]rtfs.Span
}

func (s *spanIndex) record(path string, sp rtfs.Span) {
	if !sp.IsZero() {
		s.paths[path] = sp
	}
}

// lookup returns the span of path, or of its nearest ancestor that has one,
// or of the whole config.
func (s *spanIndex) lookup(path string) rtfs.Span {
	if s == nil {
		return rtfs.Span{}
	}
	for path != "" {
		if sp, ok := s.paths[path]; ok {
			return sp
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return s.root
}

// Written reports whether the value at a dotted field path was written in
// the config's source, rather than filled in by a default.
func (c *Config) Written(path string) bool {
	if c.spans == nil {
		return false
	}
	_, ok := c.spans.paths[path]
	return ok
}

// DecodeError is a value that does not fit the Go model. The schema check
// runs first, so it means the schema and the model disagree.
type DecodeError struct {
	Path string
	Msg  string
}

// Error names the field and the problem.
func (e *DecodeError) Error() string { return "decode " + e.Path + ": " + e.Msg }

// decode turns a complete, schema-checked config map into a Config.
func decode(m *rtfs.Map) (*Config, error) {
	cfg := &Config{spans: &spanIndex{root: m.Span(), paths: map[string]rtfs.Span{}}}
	d := &decoder{spans: cfg.spans}
	if err := d.value(m, reflect.ValueOf(cfg).Elem(), ""); err != nil {
		return nil, err
	}
	return cfg, nil
}

type decoder struct {
	spans *spanIndex
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var effectType = reflect.TypeFor[Effect]()

func (d *decoder) value(v rtfs.Value, out reflect.Value, path string) error {
	d.spans.record(path, v.Span())
	if out.Type() == effectType {
		return d.effect(v, out, path)
	}
	switch out.Kind() {
	case reflect.Pointer:
		if _, isNil := v.(rtfs.Nil); isNil {
			return nil
		}
		p := reflect.New(out.Type().Elem())
		if err := d.value(v, p.Elem(), path); err != nil {
			return err
		}
		out.Set(p)
		return nil
	case reflect.Struct:
		return d.record(v, out, path)
	case reflect.Slice:
		return d.slice(v, out, path)
	case reflect.Map:
		return d.dict(v, out, path)
	}
	return d.scalar(v, out, path)
}

func (d *decoder) scalar(v rtfs.Value, out reflect.Value, path string) error {
	switch out.Kind() {
	case reflect.String:
		switch x := v.(type) {
		case rtfs.String:
			out.SetString(x.V)
			return nil
		case rtfs.Keyword:
			out.SetString(x.Name)
			return nil
		}
	case reflect.Bool:
		if x, ok := v.(rtfs.Bool); ok {
			out.SetBool(x.V)
			return nil
		}
	case reflect.Int, reflect.Int64:
		if x, ok := v.(rtfs.Int); ok {
			if out.OverflowInt(x.V) {
				return &DecodeError{path, fmt.Sprintf("%d overflows %s", x.V, out.Type())}
			}
			out.SetInt(x.V)
			return nil
		}
	case reflect.Float64:
		switch x := v.(type) {
		case rtfs.Int:
			out.SetFloat(float64(x.V))
			return nil
		case rtfs.Float:
			out.SetFloat(x.V)
			return nil
		}
	}
	return &DecodeError{path, fmt.Sprintf("cannot hold %s in %s", rtfs.Describe(v), out.Type())}
}

func (d *decoder) record(v rtfs.Value, out reflect.Value, path string) error {
	m, ok := v.(*rtfs.Map)
	if !ok {
		return &DecodeError{path, "expected a map, found " + rtfs.Describe(v)}
	}
	t := out.Type()
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("rtfs")
		if tag == "" {
			continue
		}
		fv, ok := m.GetKeyword(tag)
		if !ok {
			continue
		}
		if err := d.value(fv, out.Field(i), join(path, tag)); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) slice(v rtfs.Value, out reflect.Value, path string) error {
	vec, ok := v.(*rtfs.Vector)
	if !ok {
		return &DecodeError{path, "expected a vector, found " + rtfs.Describe(v)}
	}
	s := reflect.MakeSlice(out.Type(), len(vec.Items), len(vec.Items))
	for i, it := range vec.Items {
		if err := d.value(it, s.Index(i), join(path, fmt.Sprint(i))); err != nil {
			return err
		}
	}
	out.Set(s)
	return nil
}

func (d *decoder) dict(v rtfs.Value, out reflect.Value, path string) error {
	m, ok := v.(*rtfs.Map)
	if !ok {
		return &DecodeError{path, "expected a map, found " + rtfs.Describe(v)}
	}
	res := reflect.MakeMapWithSize(out.Type(), m.Len())
	for i, k := range m.Keys() {
		kw, ok := k.(rtfs.Keyword)
		if !ok {
			return &DecodeError{path, "map keys must be keywords, found " + rtfs.Describe(k)}
		}
		ev := reflect.New(out.Type().Elem()).Elem()
		if err := d.value(m.Vals()[i], ev, join(path, kw.Name)); err != nil {
			return err
		}
		res.SetMapIndex(reflect.ValueOf(kw.Name), ev)
	}
	out.Set(res)
	return nil
}

func (d *decoder) effect(v rtfs.Value, out reflect.Value, path string) error {
	vec, ok := v.(*rtfs.Vector)
	if !ok || len(vec.Items) != 2 {
		return &DecodeError{path, "expected [:effect {scope}], found " + rtfs.Describe(v)}
	}
	kw, ok1 := vec.Items[0].(rtfs.Keyword)
	scope, ok2 := vec.Items[1].(*rtfs.Map)
	if !ok1 || !ok2 {
		return &DecodeError{path, "expected [:effect {scope}], found " + rtfs.Describe(v)}
	}
	d.spans.record(join(path, "0"), kw.Span())
	d.spans.record(join(path, "1"), scope.Span())
	out.Set(reflect.ValueOf(Effect{Kind: kw.Name, Scope: scope}))
	return nil
}
