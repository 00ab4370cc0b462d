package rtfs

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
)

// JSON encoding of RTFS values (json/stringify and json/parse):
//
//   - nil, booleans, strings, vectors and lists map to their JSON
//     counterparts; integers are written without a point and floats always
//     with one (2.0), so that json/parse gives back an Int or a Float.
//   - Map keys must be keywords or strings and are written as JSON object
//     keys without a colon; json/parse turns every object key that is a
//     valid keyword name back into a keyword (other keys stay strings).
//   - Keyword values are written as strings with a leading colon (":done");
//     a string value that itself starts with a colon is written with a
//     second colon ("::x"), so json/parse restores keywords and such strings
//     exactly.
//   - Other values (functions, atoms, errors, NaN, infinities) are errors.
//
// Entry order of maps is kept in both directions.

func fnJSONStringify(in *Interp, args []Value) (Value, error) {
	if err := arity("json/stringify", args, 1, 1); err != nil {
		return nil, err
	}
	var b strings.Builder
	if err := in.writeJSON(&b, args[0], 0); err != nil {
		return nil, err
	}
	return String{V: b.String()}, nil
}

func jsonString(b *strings.Builder, s string) {
	enc, _ := json.Marshal(s)
	b.Write(enc)
}

func (in *Interp) writeJSON(b *strings.Builder, v Value, depth int) error {
	if depth > DefaultMaxDepth {
		return newError(ErrJSON, "json/stringify: nesting deeper than %d", DefaultMaxDepth)
	}
	if b.Len() > in.lim.MaxCollection {
		return newError(ErrLimit, "json/stringify: output longer than %d bytes (Limits.MaxCollection)", in.lim.MaxCollection)
	}
	switch x := v.(type) {
	case Nil:
		b.WriteString("null")
	case Bool:
		b.WriteString(strconv.FormatBool(x.V))
	case Int:
		b.WriteString(strconv.FormatInt(x.V, 10))
	case Float:
		if math.IsNaN(x.V) || math.IsInf(x.V, 0) {
			return newError(ErrJSON, "json/stringify: %s has no JSON representation", Print(x))
		}
		b.WriteString(FormatFloat(x.V))
	case String:
		if strings.HasPrefix(x.V, ":") {
			jsonString(b, ":"+x.V)
		} else {
			jsonString(b, x.V)
		}
	case Keyword:
		jsonString(b, ":"+x.Name)
	case Timestamp, UUID, Resource:
		jsonString(b, Print(x))
	case *Vector, *List:
		b.WriteByte('[')
		for i, it := range seqOf(x) {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := in.writeJSON(b, it, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case *Map:
		b.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			switch kk := k.(type) {
			case Keyword:
				jsonString(b, kk.Name)
			case String:
				jsonString(b, kk.V)
			default:
				return newError(ErrJSON, "json/stringify: map key %s must be a keyword or a string", describe(k))
			}
			b.WriteByte(':')
			if err := in.writeJSON(b, x.vals[i], depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return newError(ErrJSON, "json/stringify: %s has no JSON representation", describe(v))
	}
	return nil
}

func fnJSONParse(in *Interp, args []Value) (Value, error) {
	if err := arity("json/parse", args, 1, 1); err != nil {
		return nil, err
	}
	s, err := strArg("json/parse", args[0])
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	p := &jsonParser{dec: dec, in: in}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, newError(ErrJSON, "json/parse: unexpected data after the JSON value")
	}
	return v, nil
}

type jsonParser struct {
	dec   *json.Decoder
	in    *Interp
	count int
}

func (p *jsonParser) value(depth int) (Value, error) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, newError(ErrJSON, "json/parse: %v", err)
	}
	p.count++
	if p.count > p.in.lim.MaxCollection {
		return nil, newError(ErrLimit, "json/parse: more than %d values (Limits.MaxCollection)", p.in.lim.MaxCollection)
	}
	if depth > DefaultMaxDepth {
		return nil, newError(ErrJSON, "json/parse: nesting deeper than %d", DefaultMaxDepth)
	}
	switch t := tok.(type) {
	case nil:
		return Nil{}, nil
	case bool:
		return Bool{V: t}, nil
	case json.Number:
		if n, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return Int{V: n}, nil
		}
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			return nil, newError(ErrJSON, "json/parse: number %s out of range", t)
		}
		return Float{V: f}, nil
	case string:
		return jsonStringValue(t), nil
	case json.Delim:
		if t == '[' {
			var items []Value
			for p.dec.More() {
				v, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				items = append(items, v)
			}
			if _, err := p.dec.Token(); err != nil {
				return nil, newError(ErrJSON, "json/parse: %v", err)
			}
			return vec(items), nil
		}
		m := NewMap(4)
		for p.dec.More() {
			kt, err := p.dec.Token()
			if err != nil {
				return nil, newError(ErrJSON, "json/parse: %v", err)
			}
			k := kt.(string)
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m.Set(jsonKey(k), v)
		}
		if _, err := p.dec.Token(); err != nil {
			return nil, newError(ErrJSON, "json/parse: %v", err)
		}
		return m, nil
	}
	return nil, newError(ErrJSON, "json/parse: unexpected token %v", tok)
}

func jsonStringValue(s string) Value {
	if strings.HasPrefix(s, "::") {
		return String{V: s[1:]}
	}
	if len(s) > 1 && s[0] == ':' && validKeywordName(s[1:]) {
		return Keyword{Name: s[1:]}
	}
	return String{V: s}
}

func jsonKey(k string) Value {
	if validKeywordName(k) {
		return Keyword{Name: k}
	}
	return String{V: k}
}

func validKeywordName(s string) bool {
	if s == "" || s[0] == ':' || strings.HasSuffix(s, "/") || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	_, bad := badSymbolRune(s)
	return !bad
}

// ParseJSON reads JSON text into RTFS values as json/parse does (object
// keys become keywords), under the default limits.
func ParseJSON(s string) (Value, error) {
	return fnJSONParse(New(Options{}), []Value{String{V: s}})
}

// ToJSON writes v as JSON text as json/stringify does.
func ToJSON(v Value) (string, error) {
	out, err := fnJSONStringify(New(Options{}), []Value{v})
	if err != nil {
		return "", err
	}
	return out.(String).V, nil
}
