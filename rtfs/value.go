// Package rtfs implements the RTFS language used by ccos for agent
// configurations, profile macros and plans: values with source spans, a
// reader, a canonical and a pretty printer, and an evaluator.
//
// Every value produced by the reader carries the Span of the text it was read
// from. Values created at run time have a zero Span. Scalars (Nil, Bool, Int,
// Float, String, Keyword, Symbol, Timestamp, UUID, Resource) are Go values;
// collections (*List, *Vector, *Map) are pointers and must be treated as
// immutable once built: functions that "change" a collection return a copy.
package rtfs

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Kind names the type of a Value.
type Kind uint8

// The kinds of RTFS values. Func, Atom and Error exist only at run time; the
// reader never produces them.
const (
	KindNil Kind = iota
	KindBool
	KindInt
	KindFloat
	KindString
	KindKeyword
	KindSymbol
	KindList
	KindVector
	KindMap
	KindTimestamp
	KindUUID
	KindResource
	KindFunc
	KindAtom
	KindError
	KindOther
)

var kindNames = [...]string{
	KindNil: "nil", KindBool: "boolean", KindInt: "integer", KindFloat: "float",
	KindString: "string", KindKeyword: "keyword", KindSymbol: "symbol",
	KindList: "list", KindVector: "vector", KindMap: "map",
	KindTimestamp: "timestamp", KindUUID: "uuid", KindResource: "resource",
	KindFunc: "function", KindAtom: "atom", KindError: "error", KindOther: "value",
}

// String returns the RTFS name of the kind, as used in error messages.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is any RTFS value.
type Value interface {
	// Kind reports the type of the value.
	Kind() Kind
	// Span reports where the value was read from; zero for run-time values.
	Span() Span
}

// Pos is a position in a source text. Line and Col are 1-based; Col counts
// characters (runes), Offset counts bytes from the start of the text.
type Pos struct {
	Line, Col, Offset int
}

// Span is the source range of a value: from Start up to, not including, End.
type Span struct {
	File       string
	Start, End Pos
}

// IsZero reports whether the span is unknown (a run-time value).
func (s Span) IsZero() bool { return s.Start.Line == 0 }

// String formats the start of the span as file:line:col.
func (s Span) String() string {
	if s.IsZero() {
		return "<unknown>"
	}
	f := s.File
	if f == "" {
		f = "<input>"
	}
	return f + ":" + strconv.Itoa(s.Start.Line) + ":" + strconv.Itoa(s.Start.Col)
}

// Nil is the RTFS nil value.
type Nil struct{ S Span }

// Bool is true or false.
type Bool struct {
	V bool
	S Span
}

// Int is a 64-bit signed integer. Raw keeps the literal as written (for
// example "0xFF") so that the formatter can keep its spelling; it is empty
// for run-time values.
type Int struct {
	V   int64
	Raw string
	S   Span
}

// Float is a 64-bit IEEE float. Raw is the literal as written, as for Int.
type Float struct {
	V   float64
	Raw string
	S   Span
}

// String is a Unicode string.
type String struct {
	V string
	S Span
}

// Keyword is a keyword such as :a or :ns.a/b; Name excludes the leading colon.
type Keyword struct {
	Name string
	S    Span
}

// Symbol is a name such as agent.config, ns/name or x:int. Type holds a
// structured type annotation written as name:[...] (nil otherwise); Meta
// holds metadata attached with ^ (nil otherwise).
type Symbol struct {
	Name string
	Type Value
	Meta Value
	S    Span
}

// Timestamp is an RFC 3339 timestamp literal such as 2024-01-15T10:30:45Z.
type Timestamp struct {
	T   time.Time
	Raw string
	S   Span
}

// UUID is a UUID literal in its canonical 8-4-4-4-12 hexadecimal form.
type UUID struct {
	V string
	S Span
}

// Resource is a resource handle literal such as resource://local/data/file.txt;
// URI holds the whole literal.
type Resource struct {
	URI string
	S   Span
}

// Sugar records the reader shorthand a list was written with, so that the
// printers can write it back the same way.
type Sugar uint8

// The reader shorthands.
const (
	SugarNone            Sugar = iota
	SugarQuote                 // 'x       -> (quote x)
	SugarQuasiquote            // `x       -> (quasiquote x)
	SugarUnquote               // ~x       -> (unquote x)
	SugarUnquoteSplicing       // ~@x      -> (unquote-splicing x)
	SugarDeref                 // @x       -> (deref x)
	SugarFn                    // #(...)   -> (fn [%1 ...] (...)); Orig holds the body as written
	SugarType                  // :[...]   -> (type-annotation [...])
)

// List is a parenthesised form.
type List struct {
	Items []Value
	Meta  Value
	Sugar Sugar
	// Orig is the body as written for SugarFn lists.
	Orig Value
	S    Span
}

// Vector is a bracketed sequence.
type Vector struct {
	Items []Value
	Meta  Value
	S     Span
}

// Map is an ordered map: entries keep the order they were written or
// inserted in, and lookups use value equality on keys.
type Map struct {
	keys, vals []Value
	index      map[string]int
	Meta       Value
	S          Span
}

func (Nil) Kind() Kind       { return KindNil }
func (Bool) Kind() Kind      { return KindBool }
func (Int) Kind() Kind       { return KindInt }
func (Float) Kind() Kind     { return KindFloat }
func (String) Kind() Kind    { return KindString }
func (Keyword) Kind() Kind   { return KindKeyword }
func (Symbol) Kind() Kind    { return KindSymbol }
func (Timestamp) Kind() Kind { return KindTimestamp }
func (UUID) Kind() Kind      { return KindUUID }
func (Resource) Kind() Kind  { return KindResource }
func (*List) Kind() Kind     { return KindList }
func (*Vector) Kind() Kind   { return KindVector }
func (*Map) Kind() Kind      { return KindMap }

func (v Nil) Span() Span       { return v.S }
func (v Bool) Span() Span      { return v.S }
func (v Int) Span() Span       { return v.S }
func (v Float) Span() Span     { return v.S }
func (v String) Span() Span    { return v.S }
func (v Keyword) Span() Span   { return v.S }
func (v Symbol) Span() Span    { return v.S }
func (v Timestamp) Span() Span { return v.S }
func (v UUID) Span() Span      { return v.S }
func (v Resource) Span() Span  { return v.S }
func (v *List) Span() Span     { return v.S }
func (v *Vector) Span() Span   { return v.S }
func (v *Map) Span() Span      { return v.S }

// NewList returns a run-time list of items (the slice is used, not copied).
func NewList(items ...Value) *List { return &List{Items: items} }

// NewVector returns a run-time vector of items (the slice is used, not copied).
func NewVector(items ...Value) *Vector { return &Vector{Items: items} }

// NewMap returns an empty map with room for n entries.
func NewMap(n int) *Map {
	return &Map{keys: make([]Value, 0, n), vals: make([]Value, 0, n)}
}

// MapOf builds a map from alternating keys and values; a later duplicate key
// replaces the earlier value in place. It panics on an odd count, which is a
// programming error.
func MapOf(kv ...Value) *Map {
	if len(kv)%2 != 0 {
		panic("rtfs.MapOf: odd number of arguments")
	}
	m := NewMap(len(kv) / 2)
	for i := 0; i < len(kv); i += 2 {
		m.Set(kv[i], kv[i+1])
	}
	return m
}

// Len returns the number of entries.
func (m *Map) Len() int { return len(m.keys) }

// Keys returns the keys in order. The slice must not be modified.
func (m *Map) Keys() []Value { return m.keys }

// Vals returns the values in key order. The slice must not be modified.
func (m *Map) Vals() []Value { return m.vals }

// Entry returns the i-th key and value in order.
func (m *Map) Entry(i int) (Value, Value) { return m.keys[i], m.vals[i] }

const linearLookupMax = 8

func (m *Map) find(k Value) int {
	if m.index == nil && len(m.keys) <= linearLookupMax {
		for i, key := range m.keys {
			if Equal(key, k) {
				return i
			}
		}
		return -1
	}
	if m.index == nil {
		m.index = make(map[string]int, len(m.keys))
		for i, key := range m.keys {
			m.index[HashKey(key)] = i
		}
	}
	if i, ok := m.index[HashKey(k)]; ok {
		return i
	}
	return -1
}

// Get returns the value for key k.
func (m *Map) Get(k Value) (Value, bool) {
	if i := m.find(k); i >= 0 {
		return m.vals[i], true
	}
	return nil, false
}

// GetKeyword returns the value for the keyword :name.
func (m *Map) GetKeyword(name string) (Value, bool) { return m.Get(Keyword{Name: name}) }

// Set adds or replaces an entry in place. Only code that builds a new map
// may call it; shared maps are immutable (use Assoc).
func (m *Map) Set(k, v Value) {
	if i := m.find(k); i >= 0 {
		m.vals[i] = v
		return
	}
	m.keys = append(m.keys, k)
	m.vals = append(m.vals, v)
	if m.index != nil {
		m.index[HashKey(k)] = len(m.keys) - 1
	}
}

// Clone returns a copy of the map that can be changed with Set.
func (m *Map) Clone() *Map {
	c := &Map{
		keys: append(make([]Value, 0, len(m.keys)+1), m.keys...),
		vals: append(make([]Value, 0, len(m.vals)+1), m.vals...),
		Meta: m.Meta,
	}
	return c
}

// Assoc returns a new map with k set to v.
func (m *Map) Assoc(k, v Value) *Map {
	c := m.Clone()
	c.Set(k, v)
	return c
}

// Dissoc returns a new map without key k.
func (m *Map) Dissoc(k Value) *Map {
	i := m.find(k)
	if i < 0 {
		return m
	}
	c := NewMap(len(m.keys) - 1)
	c.keys = append(append(c.keys, m.keys[:i]...), m.keys[i+1:]...)
	c.vals = append(append(c.vals, m.vals[:i]...), m.vals[i+1:]...)
	c.Meta = m.Meta
	return c
}

// HashKey returns a string that is equal for two values exactly when Equal
// reports them equal. It is used to index maps and sets.
func HashKey(v Value) string {
	switch x := v.(type) {
	case Keyword:
		return "k" + x.Name
	case String:
		return "s" + x.V
	case Int:
		return "i" + strconv.FormatInt(x.V, 10)
	case Symbol:
		return "y" + x.Name
	case Nil:
		return "n"
	case Bool:
		if x.V {
			return "t"
		}
		return "f"
	case Float:
		if math.IsNaN(x.V) {
			return "dNaN"
		}
		return "d" + strconv.FormatUint(math.Float64bits(x.V), 16)
	}
	return "v" + strconv.Itoa(int(v.Kind())) + Print(v)
}

// Equal reports whether a and b are the same RTFS value. Integers and floats
// are never equal to each other; NaN equals NaN (so that printing and
// reading a value back always gives an equal value); spans, raw spellings
// and metadata are ignored; maps are equal when they hold the same entries
// in any order.
func Equal(a, b Value) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if a.Kind() != b.Kind() {
		return false
	}
	switch x := a.(type) {
	case Nil:
		return true
	case Bool:
		return x.V == b.(Bool).V
	case Int:
		return x.V == b.(Int).V
	case Float:
		y := b.(Float).V
		return x.V == y || (math.IsNaN(x.V) && math.IsNaN(y))
	case String:
		return x.V == b.(String).V
	case Keyword:
		return x.Name == b.(Keyword).Name
	case Symbol:
		y := b.(Symbol)
		return x.Name == y.Name && Equal(x.Type, y.Type)
	case Timestamp:
		return x.T.Equal(b.(Timestamp).T)
	case UUID:
		return x.V == b.(UUID).V
	case Resource:
		return x.URI == b.(Resource).URI
	case *List:
		return equalSeq(x.Items, b.(*List).Items)
	case *Vector:
		return equalSeq(x.Items, b.(*Vector).Items)
	case *Map:
		y := b.(*Map)
		if x.Len() != y.Len() {
			return false
		}
		for i, k := range x.keys {
			v, ok := y.Get(k)
			if !ok || !Equal(x.vals[i], v) {
				return false
			}
		}
		return true
	}
	if e, ok := a.(interface{ Equal(Value) bool }); ok {
		return e.Equal(b)
	}
	return a == b
}

func equalSeq(a, b []Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// Truthy reports whether v counts as true in a condition: everything but nil
// and false.
func Truthy(v Value) bool {
	switch x := v.(type) {
	case nil, Nil:
		return false
	case Bool:
		return x.V
	}
	return true
}

// HeadName returns the symbol name at the head of a list ("" otherwise).
func HeadName(v Value) string {
	if l, ok := v.(*List); ok && len(l.Items) > 0 {
		if s, ok := l.Items[0].(Symbol); ok {
			return s.Name
		}
	}
	return ""
}

// Describe returns a short description of v for error messages, such as
// `keyword :a` or `list (agent.config ...)`.
func Describe(v Value) string {
	s := Print(v)
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return fmt.Sprintf("%s %s", v.Kind(), s)
}
