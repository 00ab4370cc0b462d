package config

import (
	"encoding/json"
	"math"

	"github.com/ccos-project/ccos/rtfs"
)

// JSONSchemaID is the $id of the generated JSON Schema.
const JSONSchemaID = "https://ccos-project.github.io/schemas/agent-config.json"

// JSONSchema returns the agent.config schema as a JSON Schema (draft
// 2020-12) document, generated from schema.rtfs. It describes the JSON
// rendering of a config: keywords become strings without the colon, maps
// with keyword keys become objects, vectors become arrays. Keys are given
// in their canonical spelling; the RTFS loader also accepts '_' for '-' and
// the reverse, which JSON Schema cannot express.
func JSONSchema() ([]byte, error) {
	s, err := LoadSchema()
	if err != nil {
		return nil, err
	}
	g := &jsonGen{names: map[*rtfs.Type]string{}}
	defs := map[string]any{}
	for _, d := range s.Defs[:len(s.Defs)-1] {
		g.names[d.Type] = d.Name
	}
	for _, d := range s.Defs[:len(s.Defs)-1] {
		defs[d.Name] = g.body(d.Type)
	}
	doc := g.body(s.Root)
	doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	doc["$id"] = JSONSchemaID
	doc["title"] = "ccos agent.config"
	doc["$defs"] = defs
	return json.MarshalIndent(doc, "", "  ")
}

type jsonGen struct {
	names map[*rtfs.Type]string
}

// schema returns a reference for a named type, else its body.
func (g *jsonGen) schema(t *rtfs.Type) map[string]any {
	if n, ok := g.names[t]; ok {
		return map[string]any{"$ref": "#/$defs/" + n}
	}
	return g.body(t)
}

func (g *jsonGen) body(t *rtfs.Type) map[string]any {
	out := g.shape(t)
	if t.Doc != "" {
		out["description"] = t.Doc
	}
	if t.Code != "" {
		out["x-ccos-code"] = t.Code
	}
	return out
}

var jsonPrims = map[string]string{
	"string": "string", "number": "number", "int": "integer", "float": "number",
	"boolean": "boolean", "keyword": "string", "symbol": "string", "nil": "null",
	"map": "object", "vector": "array",
}

func (g *jsonGen) shape(t *rtfs.Type) map[string]any {
	switch t.Op {
	case rtfs.TypeAny:
		return map[string]any{}
	case rtfs.TypePrim:
		return map[string]any{"type": jsonPrims[t.Name]}
	case rtfs.TypeRecord:
		return g.record(t)
	case rtfs.TypeMapOf:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elems[1])}
	case rtfs.TypeVector:
		return map[string]any{"type": "array", "items": g.schema(t.Elems[0])}
	case rtfs.TypeTuple:
		items := make([]any, len(t.Elems))
		for i, e := range t.Elems {
			items[i] = g.schema(e)
		}
		return map[string]any{"type": "array", "prefixItems": items, "items": false,
			"minItems": len(items), "maxItems": len(items)}
	case rtfs.TypeOptional:
		return g.schema(t.Elems[0])
	case rtfs.TypeDefault:
		s := copyMap(g.schema(t.Elems[0]))
		s["default"] = jsonValue(t.Values[0])
		return s
	case rtfs.TypeEnum:
		vals := make([]any, len(t.Values))
		for i, v := range t.Values {
			vals[i] = jsonValue(v)
		}
		return map[string]any{"enum": vals}
	case rtfs.TypeAnd:
		return g.allOf(t.Elems)
	case rtfs.TypeOr:
		return map[string]any{"anyOf": g.list(t.Elems)}
	case rtfs.TypeCompare:
		return bound(t)
	case rtfs.TypeCount:
		return count(t)
	case rtfs.TypeRegexp:
		return map[string]any{"type": "string", "pattern": t.Re.String()}
	}
	return map[string]any{}
}

func (g *jsonGen) list(ts []*rtfs.Type) []any {
	out := make([]any, len(ts))
	for i, e := range ts {
		out[i] = g.schema(e)
	}
	return out
}

// allOf flattens [:and T preds...] into one schema when the members do not
// clash (the usual case: a type and its bounds), else uses allOf.
func (g *jsonGen) allOf(ts []*rtfs.Type) map[string]any {
	out := map[string]any{}
	for _, e := range ts {
		part := g.schema(e)
		for k, v := range part {
			if _, clash := out[k]; clash {
				return map[string]any{"allOf": g.list(ts)}
			}
			out[k] = v
		}
	}
	return out
}

func (g *jsonGen) record(t *rtfs.Type) map[string]any {
	props := map[string]any{}
	required := []string{}
	for _, f := range t.Fields {
		props[f.Key] = g.schema(f.Type)
		if !f.Optional() {
			required = append(required, f.Key)
		}
	}
	out := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

func bound(t *rtfs.Type) map[string]any {
	n := jsonValue(t.Values[0])
	key := map[string]string{">": "exclusiveMinimum", ">=": "minimum", "<": "exclusiveMaximum", "<=": "maximum"}[t.Name]
	return map[string]any{key: n}
}

func count(t *rtfs.Type) map[string]any {
	n := t.Values[0].(rtfs.Int).V
	// The RTFS count applies to strings, vectors and maps alike.
	if t.Name == "min-count" {
		return map[string]any{"minLength": n, "minItems": n, "minProperties": n}
	}
	return map[string]any{"maxLength": n, "maxItems": n, "maxProperties": n}
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// jsonValue renders an RTFS literal the way the schema describes configs.
func jsonValue(v rtfs.Value) any {
	switch x := v.(type) {
	case rtfs.Nil:
		return nil
	case rtfs.Bool:
		return x.V
	case rtfs.Int:
		return x.V
	case rtfs.Float:
		if math.IsNaN(x.V) || math.IsInf(x.V, 0) {
			return nil
		}
		return x.V
	case rtfs.String:
		return x.V
	case rtfs.Keyword:
		return x.Name
	case rtfs.Symbol:
		return x.Name
	case *rtfs.Vector:
		out := make([]any, len(x.Items))
		for i, it := range x.Items {
			out[i] = jsonValue(it)
		}
		return out
	case *rtfs.Map:
		out := map[string]any{}
		for i, k := range x.Keys() {
			name := rtfs.Print(k)
			if kw, ok := k.(rtfs.Keyword); ok {
				name = kw.Name
			}
			out[name] = jsonValue(x.Vals()[i])
		}
		return out
	}
	return rtfs.Print(v)
}
