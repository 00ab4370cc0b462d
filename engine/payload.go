package engine

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/ccos-project/ccos/rtfs"
)

// payloadJSON renders an event payload as JSON for live observers: maps
// become objects (keyword keys without their colon, other keys as their
// RTFS text), vectors and lists arrays, keywords strings with their colon,
// numbers, strings, booleans and nil as themselves; anything else (a
// symbol, a timestamp) is its RTFS text in a string. The chain keeps the
// exact RTFS; this is a view.
func payloadJSON(v rtfs.Value) json.RawMessage {
	return appendJSON(nil, v, 0)
}

// maxJSONDepth bounds the nesting rendered; deeper values are their text.
const maxJSONDepth = 64

func appendJSON(b []byte, v rtfs.Value, depth int) []byte {
	if depth > maxJSONDepth {
		return strconv.AppendQuote(b, rtfs.Print(v))
	}
	switch x := v.(type) {
	case nil, rtfs.Nil:
		return append(b, "null"...)
	case rtfs.Bool:
		return strconv.AppendBool(b, x.V)
	case rtfs.Int:
		return strconv.AppendInt(b, x.V, 10)
	case rtfs.Float:
		if math.IsInf(x.V, 0) || math.IsNaN(x.V) {
			return strconv.AppendQuote(b, rtfs.Print(x))
		}
		return strconv.AppendFloat(b, x.V, 'g', -1, 64)
	case rtfs.String:
		return appendString(b, x.V)
	case rtfs.Keyword:
		return appendString(b, ":"+x.Name)
	case *rtfs.Vector:
		return appendArray(b, x.Items, depth)
	case *rtfs.List:
		return appendArray(b, x.Items, depth)
	case *rtfs.Map:
		b = append(b, '{')
		for i := 0; i < x.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			k, val := x.Entry(i)
			switch kk := k.(type) {
			case rtfs.Keyword:
				b = appendString(b, kk.Name)
			case rtfs.String:
				b = appendString(b, kk.V)
			default:
				b = appendString(b, rtfs.Print(k))
			}
			b = append(b, ':')
			b = appendJSON(b, val, depth+1)
		}
		return append(b, '}')
	}
	return appendString(b, rtfs.Print(v))
}

func appendArray(b []byte, items []rtfs.Value, depth int) []byte {
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSON(b, it, depth+1)
	}
	return append(b, ']')
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}
