package rtfs

// This file holds the RTFS type checker: type expressions written as RTFS
// data, parsed once into a *Type, and checked against values with errors
// that carry the path and span of the offending form.
//
// The type expression language:
//
//	string number int integer float boolean bool keyword symbol nil any
//	                         primitive types, written as symbols or keywords
//	{:k T ...}               a closed record: every key must be in the schema,
//	                         every key whose type is not optional must be present
//	[:map [:k T] ...]        the same record written as a vector
//	[:map-of K V]            a map whose keys all have type K and values type V
//	[:vector T]              a vector whose items all have type T
//	[:tuple T1 T2 ...]       a vector of exactly these item types
//	[:optional T]            T or nil; as a record field, the key may be absent
//	[:default T v]           as a record field, the key may be absent and then
//	                         means v (Complete fills it in)
//	[:enum v ...]            one of the literal values
//	[:= v]                   exactly the literal value
//	[:and T P ...]           all of the types or predicates, checked in order
//	[:or T ...]              any one of the types
//	[:> n] [:>= n] [:< n] [:<= n]
//	                         numeric bounds
//	[:min-count n] [:max-count n]
//	                         bounds on the length of a string, vector or map
//	[:re "regexp"]           a string matching the (Go RE2) regular expression
//
// Any vector form may carry a properties map as its second item, such as
// [:and {:code "INVALID_VCPUS" :hint "use 1 to 32"} int [:>= 1]]. The
// properties :code and :hint are copied into the errors raised inside that
// form, so that a schema can name its own diagnostics; :doc documents it.
//
// Named types come from a TypeEnv: a symbol that is not a primitive name
// refers to a type defined earlier in the environment.

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// TypeOp names the form of a parsed type expression.
type TypeOp uint8

// The type expression forms.
const (
	TypeAny TypeOp = iota
	TypePrim
	TypeRecord
	TypeMapOf
	TypeVector
	TypeTuple
	TypeOptional
	TypeDefault
	TypeEnum
	TypeAnd
	TypeOr
	TypeCompare
	TypeCount
	TypeRegexp
)

// Type is a parsed type expression. Build one with ParseType or
// TypeEnv.Define; the fields are exported so that generators (JSON Schema,
// documentation) can walk it, and must not be changed.
type Type struct {
	// Op is the form of the expression.
	Op TypeOp
	// Name is the primitive name for TypePrim ("string", "int", ...), the
	// comparison operator for TypeCompare (">=", ...), "min-count" or
	// "max-count" for TypeCount, and the defining name for named types.
	Name string
	// Elems are the operand types: the item type of a vector, the key and
	// value types of a map-of, the items of a tuple, the members of an
	// and/or, the wrapped type of optional and default.
	Elems []*Type
	// Fields are the keys of a record, in schema order.
	Fields []*Field
	// Values are the literals of an enum, the operand of a comparison or
	// count, the default of TypeDefault.
	Values []Value
	// Re is the compiled expression of TypeRegexp.
	Re *regexp.Regexp
	// Code, Hint and Doc come from the properties map of the form.
	Code, Hint, Doc string
	// Expr is the expression the type was parsed from.
	Expr Value

	// exact and folded index Fields by key name and by FoldKey(name).
	exact, folded map[string]int
}

// fieldIndex returns the index of the record field named name, matching
// under FoldKey when fold is set.
func (t *Type) fieldIndex(name string, fold bool) (int, bool) {
	if fold {
		i, ok := t.folded[FoldKey(name)]
		return i, ok
	}
	i, ok := t.exact[name]
	return i, ok
}

// Field is one key of a record type.
type Field struct {
	// Key is the keyword name of the key, without the colon.
	Key string
	// Type is the type of the value; it may be TypeOptional or TypeDefault.
	Type *Type
}

// Optional reports whether the field may be absent.
func (f *Field) Optional() bool {
	return f.Type.Op == TypeOptional || f.Type.Op == TypeDefault
}

// Default returns the value an absent field stands for, if any.
func (f *Field) Default() (Value, bool) {
	if f.Type.Op == TypeDefault {
		return f.Type.Values[0], true
	}
	return nil, false
}

// primitives maps every primitive spelling to its canonical name.
var primitives = map[string]string{
	"string": "string", "number": "number", "int": "int", "integer": "int",
	"float": "float", "boolean": "boolean", "bool": "boolean",
	"keyword": "keyword", "symbol": "symbol", "nil": "nil", "any": "any",
	"map": "map", "vector": "vector",
}

// TypeEnv holds named types; names are resolved when a type is parsed, so a
// name must be defined before it is used.
type TypeEnv struct {
	names map[string]*Type
}

// NewTypeEnv returns an empty environment.
func NewTypeEnv() *TypeEnv { return &TypeEnv{names: map[string]*Type{}} }

// Define parses expr and binds it to name.
func (env *TypeEnv) Define(name string, expr Value) (*Type, error) {
	t, err := env.Parse(expr)
	if err != nil {
		return nil, err
	}
	env.names[name] = t
	return t, nil
}

// Lookup returns the type bound to name.
func (env *TypeEnv) Lookup(name string) (*Type, bool) {
	t, ok := env.names[name]
	return t, ok
}

// ParseType parses a type expression that uses no named types.
func ParseType(expr Value) (*Type, error) { return NewTypeEnv().Parse(expr) }

// TypeSyntaxError is a malformed type expression.
type TypeSyntaxError struct {
	Span Span
	Msg  string
}

// Error formats the problem with its position.
func (e *TypeSyntaxError) Error() string { return e.Span.String() + ": bad type expression: " + e.Msg }

func typeErrf(v Value, format string, args ...any) error {
	return &TypeSyntaxError{Span: v.Span(), Msg: fmt.Sprintf(format, args...)}
}

// Parse parses a type expression, resolving symbols in env.
func (env *TypeEnv) Parse(expr Value) (*Type, error) {
	switch x := expr.(type) {
	case Symbol:
		return env.named(x, x.Name)
	case Keyword:
		return env.named(x, x.Name)
	case *Map:
		return env.parseRecord(x, x.Keys(), x.Vals(), nil)
	case *Vector:
		return env.parseForm(x)
	}
	return nil, typeErrf(expr, "expected a type name, a map or a vector, found %s", Describe(expr))
}

func (env *TypeEnv) named(expr Value, name string) (*Type, error) {
	if p, ok := primitives[name]; ok {
		if p == "any" {
			return &Type{Op: TypeAny, Name: p, Expr: expr}, nil
		}
		return &Type{Op: TypePrim, Name: p, Expr: expr}, nil
	}
	if t, ok := env.names[name]; ok {
		return t, nil
	}
	return nil, typeErrf(expr, "unknown type name %s", name)
}

func (env *TypeEnv) parseRecord(expr Value, keys, vals []Value, props *Map) (*Type, error) {
	t := &Type{Op: TypeRecord, Expr: expr}
	setProps(t, props)
	seen := map[string]bool{}
	for i, k := range keys {
		kw, ok := k.(Keyword)
		if !ok {
			return nil, typeErrf(k, "record keys must be keywords, found %s", Describe(k))
		}
		if seen[FoldKey(kw.Name)] {
			return nil, typeErrf(k, "key :%s is defined twice", kw.Name)
		}
		seen[FoldKey(kw.Name)] = true
		ft, err := env.Parse(vals[i])
		if err != nil {
			return nil, err
		}
		t.Fields = append(t.Fields, &Field{Key: kw.Name, Type: ft})
	}
	t.exact = make(map[string]int, len(t.Fields))
	t.folded = make(map[string]int, len(t.Fields))
	for i, f := range t.Fields {
		t.exact[f.Key] = i
		t.folded[FoldKey(f.Key)] = i
	}
	return t, nil
}

func setProps(t *Type, props *Map) {
	if props == nil {
		return
	}
	str := func(name string) string {
		if v, ok := props.GetKeyword(name); ok {
			if s, ok := v.(String); ok {
				return s.V
			}
		}
		return ""
	}
	t.Code, t.Hint, t.Doc = str("code"), str("hint"), str("doc")
}

var formArity = map[string][2]int{ // min, max operands; -1 is unbounded
	"map": {0, -1}, "map-of": {2, 2}, "vector": {1, 1}, "tuple": {1, -1},
	"optional": {1, 1}, "default": {2, 2}, "enum": {1, -1}, "=": {1, 1},
	"and": {1, -1}, "or": {1, -1}, ">": {1, 1}, ">=": {1, 1}, "<": {1, 1},
	"<=": {1, 1}, "min-count": {1, 1}, "max-count": {1, 1}, "re": {1, 1},
}

func (env *TypeEnv) parseForm(v *Vector) (*Type, error) {
	if len(v.Items) == 0 {
		return nil, typeErrf(v, "empty type form")
	}
	head, ok := v.Items[0].(Keyword)
	if !ok {
		return nil, typeErrf(v.Items[0], "a type form starts with a keyword such as :vector, found %s", Describe(v.Items[0]))
	}
	arity, ok := formArity[head.Name]
	if !ok {
		return nil, typeErrf(head, "unknown type form :%s", head.Name)
	}
	args := v.Items[1:]
	var props *Map
	if len(args) > 0 && head.Name != "=" {
		if m, ok := args[0].(*Map); ok && isPropsMap(m) {
			props, args = m, args[1:]
		}
	}
	if len(args) < arity[0] || arity[1] >= 0 && len(args) > arity[1] {
		return nil, typeErrf(v, "[:%s ...] takes %s, found %d", head.Name, arityText(arity), len(args))
	}
	t, err := env.parseOperands(v, head.Name, args)
	if err != nil {
		return nil, err
	}
	setProps(t, props)
	return t, nil
}

// isPropsMap tells a properties map from a record type operand such as
// [:optional {:a int}]: properties use only the property keys.
func isPropsMap(m *Map) bool {
	if m.Len() == 0 {
		return false
	}
	for _, k := range m.Keys() {
		kw, ok := k.(Keyword)
		if !ok || kw.Name != "code" && kw.Name != "hint" && kw.Name != "doc" {
			return false
		}
	}
	return true
}

func arityText(a [2]int) string {
	switch {
	case a[0] == a[1]:
		return strconv.Itoa(a[0]) + " operand(s)"
	case a[1] < 0:
		return "at least " + strconv.Itoa(a[0]) + " operand(s)"
	}
	return fmt.Sprintf("%d to %d operands", a[0], a[1])
}

func (env *TypeEnv) parseOperands(v *Vector, op string, args []Value) (*Type, error) {
	switch op {
	case "map":
		return env.parseMapForm(v, args)
	case "enum", "=":
		return &Type{Op: TypeEnum, Values: args, Expr: v}, nil
	case ">", ">=", "<", "<=", "min-count", "max-count":
		return parseBound(v, op, args[0])
	case "re":
		s, ok := args[0].(String)
		if !ok {
			return nil, typeErrf(args[0], "[:re ...] takes a string, found %s", Describe(args[0]))
		}
		re, err := regexp.Compile(s.V)
		if err != nil {
			return nil, typeErrf(args[0], "bad regular expression: %v", err)
		}
		return &Type{Op: TypeRegexp, Re: re, Values: args, Expr: v}, nil
	case "default":
		inner, err := env.Parse(args[0])
		if err != nil {
			return nil, err
		}
		return &Type{Op: TypeDefault, Elems: []*Type{inner}, Values: args[1:], Expr: v}, nil
	}
	elems := make([]*Type, len(args))
	for i, a := range args {
		t, err := env.Parse(a)
		if err != nil {
			return nil, err
		}
		elems[i] = t
	}
	ops := map[string]TypeOp{"map-of": TypeMapOf, "vector": TypeVector, "tuple": TypeTuple,
		"optional": TypeOptional, "and": TypeAnd, "or": TypeOr}
	return &Type{Op: ops[op], Elems: elems, Expr: v}, nil
}

func (env *TypeEnv) parseMapForm(v *Vector, args []Value) (*Type, error) {
	keys := make([]Value, len(args))
	vals := make([]Value, len(args))
	for i, a := range args {
		e, ok := a.(*Vector)
		if !ok || len(e.Items) != 2 {
			return nil, typeErrf(a, "[:map ...] entries are [:key type], found %s", Describe(a))
		}
		keys[i], vals[i] = e.Items[0], e.Items[1]
	}
	return env.parseRecord(v, keys, vals, nil)
}

func parseBound(v *Vector, op string, arg Value) (*Type, error) {
	if _, ok := numberOf(arg); !ok {
		return nil, typeErrf(arg, "[:%s ...] takes a number, found %s", op, Describe(arg))
	}
	if op == "min-count" || op == "max-count" {
		if _, ok := arg.(Int); !ok {
			return nil, typeErrf(arg, "[:%s ...] takes an integer", op)
		}
		return &Type{Op: TypeCount, Name: op, Values: []Value{arg}, Expr: v}, nil
	}
	return &Type{Op: TypeCompare, Name: op, Values: []Value{arg}, Expr: v}, nil
}

func numberOf(v Value) (float64, bool) {
	switch x := v.(type) {
	case Int:
		return float64(x.V), true
	case Float:
		return x.V, true
	}
	return 0, false
}

// FoldKey returns the spelling of a key name under which kebab-case and
// snake_case spell the same key: every '_' becomes '-'.
func FoldKey(name string) string { return strings.ReplaceAll(name, "_", "-") }

// TypeErrorKind classifies a type error.
type TypeErrorKind uint8

// The kinds of type errors.
const (
	// TypeMismatch is a value of the wrong kind.
	TypeMismatch TypeErrorKind = iota
	// TypeUnknownKey is a record key the schema does not define.
	TypeUnknownKey
	// TypeMissingKey is a required record key that is absent.
	TypeMissingKey
	// TypeDuplicateKey is a key written twice under two spellings.
	TypeDuplicateKey
	// TypeBadValue is a value of the right kind that fails an enum,
	// bound, count or regular expression.
	TypeBadValue
)

// TypeError is one place where a value does not match its type.
type TypeError struct {
	// Path leads from the checked value to the offending one: keywords for
	// map keys, Ints for vector indexes.
	Path []Value
	// Span is where the offending form was written: the value, the key for
	// an unknown or duplicate key, the enclosing map for a missing key. It
	// is zero when the value was built at run time.
	Span Span
	// Kind classifies the error.
	Kind TypeErrorKind
	// Msg says what was expected and found; Hint how to repair it.
	Msg, Hint string
	// Code is the :code property of the innermost type form that declares
	// one around the failure, if any.
	Code string
}

// Error formats the error as "span: at path: message (hint: ...)".
func (e *TypeError) Error() string {
	var b strings.Builder
	if !e.Span.IsZero() {
		b.WriteString(e.Span.String())
		b.WriteString(": ")
	}
	if len(e.Path) > 0 {
		b.WriteString("at ")
		b.WriteString(KeyPath(e.Path))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(e.Hint)
		b.WriteByte(')')
	}
	return b.String()
}

// KeyPath formats a path the way get-in takes it: ":microvm :resources 0".
func KeyPath(path []Value) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = Print(p)
	}
	return strings.Join(parts, " ")
}

// DottedPath formats a path as "microvm.resources.0".
func DottedPath(path []Value) string {
	parts := make([]string, len(path))
	for i, p := range path {
		if k, ok := p.(Keyword); ok {
			parts[i] = k.Name
		} else {
			parts[i] = Print(p)
		}
	}
	return strings.Join(parts, ".")
}

// CheckOptions tune Check.
type CheckOptions struct {
	// FoldKeys makes record keys match under FoldKey, so that :mem-mb and
	// :mem_mb name the same field.
	FoldKeys bool
	// MaxErrors stops checking after this many errors (0: no limit).
	MaxErrors int
}

type checker struct {
	opts CheckOptions
	errs []*TypeError
}

func (c *checker) full() bool { return c.opts.MaxErrors > 0 && len(c.errs) >= c.opts.MaxErrors }

func (c *checker) add(e *TypeError) {
	if !c.full() {
		c.errs = append(c.errs, e)
	}
}

// Check checks v against t and returns every error found, in the order of
// the schema (record fields in schema order, then unknown keys in the order
// written). A nil result means v has type t.
func (t *Type) Check(v Value, opts CheckOptions) []*TypeError {
	c := &checker{opts: opts}
	c.check(v, t, nil, "", "")
	return c.errs
}

// extend returns path+k in a new slice, so that recorded paths never alias.
func extend(path []Value, k Value) []Value {
	out := make([]Value, len(path)+1)
	copy(out, path)
	out[len(path)] = k
	return out
}

func (c *checker) fail(v Value, path []Value, kind TypeErrorKind, code, hint, format string, args ...any) {
	var sp Span
	if v != nil {
		sp = v.Span()
	}
	c.add(&TypeError{Path: path, Span: sp, Kind: kind, Code: code, Hint: hint, Msg: fmt.Sprintf(format, args...)})
}

// check reports whether v matched, adding errors when it did not. code and
// hint are inherited from enclosing forms.
func (c *checker) check(v Value, t *Type, path []Value, code, hint string) bool {
	if c.full() {
		return false
	}
	if t.Code != "" {
		code = t.Code
	}
	if t.Hint != "" {
		hint = t.Hint
	}
	switch t.Op {
	case TypeAny:
		return true
	case TypePrim:
		return c.checkPrim(v, t.Name, path, code, hint)
	case TypeRecord:
		return c.checkRecord(v, t, path, code, hint)
	case TypeMapOf:
		return c.checkMapOf(v, t, path, code, hint)
	case TypeVector, TypeTuple:
		return c.checkSeq(v, t, path, code, hint)
	case TypeOptional, TypeDefault:
		if _, isNil := v.(Nil); isNil {
			return true
		}
		return c.check(v, t.Elems[0], path, code, hint)
	case TypeEnum:
		return c.checkEnum(v, t, path, code, hint)
	case TypeAnd:
		for _, e := range t.Elems {
			if !c.check(v, e, path, code, hint) {
				return false
			}
		}
		return true
	case TypeOr:
		// Each member is tried on its own and stops at its first error;
		// only the or's own mismatch is reported.
		probe := CheckOptions{FoldKeys: c.opts.FoldKeys, MaxErrors: 1}
		for _, e := range t.Elems {
			if len(e.Check(v, probe)) == 0 {
				return true
			}
		}
		c.fail(v, path, TypeMismatch, code, hint, "expected %s, found %s", DescribeType(t), Describe(v))
		return false
	case TypeCompare:
		return c.checkCompare(v, t, path, code, hint)
	case TypeCount:
		return c.checkCount(v, t, path, code, hint)
	case TypeRegexp:
		s, ok := v.(String)
		if !ok {
			c.fail(v, path, TypeMismatch, code, hint, "expected a string, found %s", Describe(v))
			return false
		}
		if !t.Re.MatchString(s.V) {
			c.fail(v, path, TypeBadValue, code, hint, "%s does not match %s", QuoteString(s.V), QuoteString(t.Re.String()))
			return false
		}
		return true
	}
	return false
}

func primMatches(v Value, name string) bool {
	switch name {
	case "string":
		return v.Kind() == KindString
	case "number":
		return v.Kind() == KindInt || v.Kind() == KindFloat
	case "int":
		return v.Kind() == KindInt
	case "float":
		return v.Kind() == KindFloat
	case "boolean":
		return v.Kind() == KindBool
	case "keyword":
		return v.Kind() == KindKeyword
	case "symbol":
		return v.Kind() == KindSymbol
	case "nil":
		return v.Kind() == KindNil
	case "map":
		return v.Kind() == KindMap
	case "vector":
		return v.Kind() == KindVector
	}
	return false
}

var primArticles = map[string]string{
	"string": "a string", "number": "a number", "int": "an integer", "float": "a float",
	"boolean": "a boolean", "keyword": "a keyword", "symbol": "a symbol", "nil": "nil",
	"map": "a map", "vector": "a vector",
}

func (c *checker) checkPrim(v Value, name string, path []Value, code, hint string) bool {
	if primMatches(v, name) {
		return true
	}
	if hint == "" {
		hint = primHint(v, name)
	}
	c.fail(v, path, TypeMismatch, code, hint, "expected %s, found %s", primArticles[name], Describe(v))
	return false
}

// primHint suggests the usual repair for a common mix-up.
func primHint(v Value, want string) string {
	switch x := v.(type) {
	case Symbol:
		if want == "keyword" {
			return "keywords start with a colon: write :" + x.Name
		}
		if want == "string" {
			return "strings are quoted: write " + QuoteString(x.Name)
		}
	case String:
		if want == "keyword" {
			return "write the keyword :" + x.V + " instead of a string"
		}
		if want == "int" || want == "number" {
			return "numbers are written without quotes"
		}
		if want == "boolean" {
			return "write true or false without quotes"
		}
	case Float:
		if want == "int" {
			return "write a whole number without a decimal point"
		}
	case Keyword:
		if want == "string" {
			return "write the string " + QuoteString(x.Name) + " instead of a keyword"
		}
	}
	return ""
}

// DescribeType describes a type for error messages, such as "an integer" or
// "one of :wasm, :container".
func DescribeType(t *Type) string {
	switch t.Op {
	case TypeAny:
		return "any value"
	case TypePrim:
		return primArticles[t.Name]
	case TypeRecord:
		return "a map"
	case TypeMapOf:
		return "a map"
	case TypeVector, TypeTuple:
		return "a vector"
	case TypeOptional, TypeDefault:
		return DescribeType(t.Elems[0]) + " or nil"
	case TypeEnum:
		return "one of " + enumText(t.Values)
	case TypeAnd:
		return DescribeType(t.Elems[0])
	case TypeOr:
		parts := make([]string, len(t.Elems))
		for i, e := range t.Elems {
			parts[i] = DescribeType(e)
		}
		return strings.Join(parts, " or ")
	case TypeCompare:
		return "a number " + t.Name + " " + Print(t.Values[0])
	case TypeCount:
		return "a value with " + t.Name + " " + Print(t.Values[0])
	case TypeRegexp:
		return "a string matching " + QuoteString(t.Re.String())
	}
	return "a value"
}

func enumText(vals []Value) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = Print(v)
	}
	return strings.Join(parts, ", ")
}

func (c *checker) checkEnum(v Value, t *Type, path []Value, code, hint string) bool {
	for _, e := range t.Values {
		if Equal(v, e) {
			return true
		}
	}
	kind := TypeBadValue
	if len(t.Values) > 0 && t.Values[0].Kind() != v.Kind() {
		kind = TypeMismatch
	}
	if hint == "" {
		hint = enumHint(v, t.Values)
	}
	if len(t.Values) == 1 {
		c.fail(v, path, kind, code, hint, "expected %s, found %s", Print(t.Values[0]), Describe(v))
	} else {
		c.fail(v, path, kind, code, hint, "expected one of %s, found %s", enumText(t.Values), Describe(v))
	}
	return false
}

func enumHint(v Value, vals []Value) string {
	var name string
	switch x := v.(type) {
	case Keyword:
		name = x.Name
	case Symbol:
		name = x.Name
	case String:
		name = x.V
	default:
		return ""
	}
	cands := make([]string, 0, len(vals))
	for _, e := range vals {
		if k, ok := e.(Keyword); ok {
			cands = append(cands, k.Name)
		}
	}
	if best := Closest(name, cands); best != "" {
		return "did you mean :" + best + "?"
	}
	return ""
}

func (c *checker) checkCompare(v Value, t *Type, path []Value, code, hint string) bool {
	x, ok := numberOf(v)
	if !ok {
		c.fail(v, path, TypeMismatch, code, hint, "expected a number, found %s", Describe(v))
		return false
	}
	bound, _ := numberOf(t.Values[0])
	var good bool
	switch t.Name {
	case ">":
		good = x > bound
	case ">=":
		good = x >= bound
	case "<":
		good = x < bound
	case "<=":
		good = x <= bound
	}
	if !good {
		c.fail(v, path, TypeBadValue, code, hint, "%s must be %s %s", Print(v), t.Name, Print(t.Values[0]))
	}
	return good
}

func (c *checker) checkCount(v Value, t *Type, path []Value, code, hint string) bool {
	var n int
	switch x := v.(type) {
	case String:
		n = utf8.RuneCountInString(x.V)
	case *Vector:
		n = len(x.Items)
	case *List:
		n = len(x.Items)
	case *Map:
		n = x.Len()
	default:
		c.fail(v, path, TypeMismatch, code, hint, "expected a string, vector or map, found %s", Describe(v))
		return false
	}
	bound := int(t.Values[0].(Int).V)
	if t.Name == "min-count" && n < bound {
		c.fail(v, path, TypeBadValue, code, hint, "has %d item(s), at least %d required", n, bound)
		return false
	}
	if t.Name == "max-count" && n > bound {
		c.fail(v, path, TypeBadValue, code, hint, "has %d item(s), at most %d allowed", n, bound)
		return false
	}
	return true
}

func (c *checker) checkSeq(v Value, t *Type, path []Value, code, hint string) bool {
	vec, ok := v.(*Vector)
	if !ok {
		c.fail(v, path, TypeMismatch, code, hint, "expected a vector, found %s", Describe(v))
		return false
	}
	good := true
	if t.Op == TypeTuple {
		if len(vec.Items) != len(t.Elems) {
			c.fail(v, path, TypeMismatch, code, hint, "expected a vector of %d item(s), found %d", len(t.Elems), len(vec.Items))
			return false
		}
		for i, it := range vec.Items {
			good = c.check(it, t.Elems[i], extend(path, Int{V: int64(i)}), code, hint) && good
		}
		return good
	}
	for i, it := range vec.Items {
		good = c.check(it, t.Elems[0], extend(path, Int{V: int64(i)}), code, hint) && good
	}
	return good
}

func (c *checker) checkMapOf(v Value, t *Type, path []Value, code, hint string) bool {
	m, ok := v.(*Map)
	if !ok {
		c.fail(v, path, TypeMismatch, code, hint, "expected a map, found %s", Describe(v))
		return false
	}
	good := true
	for i, k := range m.Keys() {
		good = c.check(k, t.Elems[0], extend(path, k), code, hint) && good
		good = c.check(m.Vals()[i], t.Elems[1], extend(path, k), code, hint) && good
	}
	return good
}

func (c *checker) checkRecord(v Value, t *Type, path []Value, code, hint string) bool {
	m, ok := v.(*Map)
	if !ok {
		c.fail(v, path, TypeMismatch, code, hint, "expected a map, found %s", Describe(v))
		return false
	}
	found := make([]int, len(t.Fields)) // entry index+1 of each field
	good := true
	var unknown []int
	for i, k := range m.Keys() {
		kw, isKw := k.(Keyword)
		if !isKw {
			unknown = append(unknown, i)
			continue
		}
		fi, known := t.fieldIndex(kw.Name, c.opts.FoldKeys)
		if !known {
			unknown = append(unknown, i)
			continue
		}
		if found[fi] != 0 {
			first := m.Keys()[found[fi]-1]
			c.fail(k, extend(path, Keyword{Name: t.Fields[fi].Key}), TypeDuplicateKey, "",
				"remove one of the two entries", "key %s is also written as %s at %s; they name the same key",
				Print(k), Print(first), first.Span().String())
			good = false
			continue
		}
		found[fi] = i + 1
	}
	for fi, f := range t.Fields {
		fp := extend(path, Keyword{Name: f.Key})
		if found[fi] == 0 {
			if !f.Optional() {
				c.add(&TypeError{Path: fp, Span: m.Span(), Kind: TypeMissingKey,
					Msg:  fmt.Sprintf("missing required key :%s in %s", f.Key, where(path)),
					Hint: fmt.Sprintf("add :%s with %s", f.Key, DescribeType(f.Type))})
				good = false
			}
			continue
		}
		good = c.check(m.Vals()[found[fi]-1], f.Type, fp, "", "") && good
	}
	for _, i := range unknown {
		c.unknownKey(m.Keys()[i], t, path)
		good = false
	}
	return good
}

func where(path []Value) string {
	if len(path) == 0 {
		return "the top-level map"
	}
	return KeyPath(path)
}

func (c *checker) unknownKey(k Value, t *Type, path []Value) {
	if c.full() {
		return // the hint's edit distances are not free
	}
	names := make([]string, len(t.Fields))
	for i, f := range t.Fields {
		names[i] = f.Key
	}
	kw, ok := k.(Keyword)
	if !ok {
		c.add(&TypeError{Path: extend(path, k), Span: k.Span(), Kind: TypeUnknownKey,
			Msg:  fmt.Sprintf("key %s in %s is not a keyword", Describe(k), where(path)),
			Hint: "keys are keywords such as :" + names0(names)})
		return
	}
	hint := ""
	if best := Closest(kw.Name, names); best != "" {
		hint = "did you mean :" + best + "?"
	} else if len(names) > 0 {
		hint = "known keys: :" + strings.Join(names, ", :")
	}
	c.add(&TypeError{Path: extend(path, k), Span: k.Span(), Kind: TypeUnknownKey,
		Msg: fmt.Sprintf("unknown key :%s in %s", kw.Name, where(path)), Hint: hint})
}

func names0(names []string) string {
	if len(names) == 0 {
		return "key"
	}
	return names[0]
}

// Complete returns v with every record key spelled as in the schema, every
// absent defaulted key filled in with its default, record entries in schema
// order, and keys unknown to the schema dropped. Values keep their spans;
// filled-in defaults have none. Complete assumes Check found no error; on
// values that do not match it returns them unchanged where they differ.
func (t *Type) Complete(v Value, opts CheckOptions) Value {
	switch t.Op {
	case TypeOptional, TypeDefault:
		if _, isNil := v.(Nil); isNil {
			if t.Op == TypeDefault {
				return t.Elems[0].Complete(stripSpans(t.Values[0]), opts)
			}
			return v
		}
		return t.Elems[0].Complete(v, opts)
	case TypeAnd:
		for _, e := range t.Elems {
			v = e.Complete(v, opts)
		}
		return v
	case TypeVector, TypeTuple:
		vec, ok := v.(*Vector)
		if !ok {
			return v
		}
		items := make([]Value, len(vec.Items))
		for i, it := range vec.Items {
			et := t.Elems[0]
			if t.Op == TypeTuple && i < len(t.Elems) {
				et = t.Elems[i]
			}
			items[i] = et.Complete(it, opts)
		}
		return &Vector{Items: items, Meta: vec.Meta, S: vec.S}
	case TypeMapOf:
		m, ok := v.(*Map)
		if !ok {
			return v
		}
		out := NewMap(m.Len())
		out.S, out.Meta = m.S, m.Meta
		for i, k := range m.Keys() {
			out.Set(k, t.Elems[1].Complete(m.Vals()[i], opts))
		}
		return out
	case TypeRecord:
		return t.completeRecord(v, opts)
	}
	return v
}

func (t *Type) completeRecord(v Value, opts CheckOptions) Value {
	m, ok := v.(*Map)
	if !ok {
		return v
	}
	at := make([]int, len(t.Fields)) // entry index+1 of each field
	for i, k := range m.Keys() {
		if kw, ok := k.(Keyword); ok {
			if fi, ok := t.fieldIndex(kw.Name, opts.FoldKeys); ok && at[fi] == 0 {
				at[fi] = i + 1
			}
		}
	}
	out := NewMap(len(t.Fields))
	out.S, out.Meta = m.S, m.Meta
	for fi, f := range t.Fields {
		key := Keyword{Name: f.Key}
		if i := at[fi] - 1; i >= 0 {
			key.S = m.Keys()[i].Span()
			out.Set(key, f.Type.Complete(m.Vals()[i], opts))
		} else if d, ok := f.Default(); ok {
			out.Set(key, f.Type.Complete(stripSpans(d), opts))
		}
	}
	return out
}

// stripSpans returns a copy of a literal with zero spans, so that a default
// copied from the schema is not reported at the schema's position.
func stripSpans(v Value) Value {
	switch x := v.(type) {
	case Nil:
		return Nil{}
	case Bool:
		return Bool{V: x.V}
	case Int:
		return Int{V: x.V}
	case Float:
		return Float{V: x.V}
	case String:
		return String{V: x.V}
	case Keyword:
		return Keyword{Name: x.Name}
	case Symbol:
		return Symbol{Name: x.Name}
	case *Vector:
		items := make([]Value, len(x.Items))
		for i, it := range x.Items {
			items[i] = stripSpans(it)
		}
		return &Vector{Items: items}
	case *List:
		items := make([]Value, len(x.Items))
		for i, it := range x.Items {
			items[i] = stripSpans(it)
		}
		return &List{Items: items}
	case *Map:
		out := NewMap(x.Len())
		for i, k := range x.Keys() {
			out.Set(stripSpans(k), stripSpans(x.Vals()[i]))
		}
		return out
	}
	return v
}

// SortTypeErrors orders errors by source position, then by path, so that
// reports are stable whatever order the schema checks keys in.
func SortTypeErrors(errs []*TypeError) {
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i].Span, errs[j].Span
		if a.Start.Offset != b.Start.Offset {
			return a.Start.Offset < b.Start.Offset
		}
		return DottedPath(errs[i].Path) < DottedPath(errs[j].Path)
	})
}
