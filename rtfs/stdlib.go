package rtfs

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// builtins is the standard library: read-only, shared by every Interp.
// Programs may shadow a name with def or let.
var builtins map[string]*Func

func init() {
	builtins = make(map[string]*Func)
	reg := func(fn NativeFunc, names ...string) {
		for _, n := range names {
			builtins[n] = NewNative(n, fn)
		}
	}
	// Arithmetic and comparison.
	reg(fold("+", Int{V: 0}), "+")
	reg(fold("-", nil), "-")
	reg(fold("*", Int{V: 1}), "*")
	reg(fold("/", nil), "/")
	reg(modRem("mod"), "mod")
	reg(modRem("rem"), "rem")
	reg(incDec("inc", 1), "inc")
	reg(incDec("dec", -1), "dec")
	reg(minMax("min", -1), "min")
	reg(minMax("max", 1), "max")
	reg(fnAbs, "abs")
	reg(fnPow, "pow")
	reg(floatFn2("Math/pow", math.Pow), "Math/pow")
	reg(fnFactorial, "factorial")
	reg(floatFn("sqrt", math.Sqrt), "sqrt", "Math/sqrt")
	reg(roundFn("floor", math.Floor), "floor", "Math/floor")
	reg(roundFn("ceil", math.Ceil), "ceil", "Math/ceil")
	reg(roundFn("round", math.Round), "round", "Math/round")
	reg(numCompare("<", func(c int) bool { return c < 0 }), "<")
	reg(numCompare("<=", func(c int) bool { return c <= 0 }), "<=")
	reg(numCompare(">", func(c int) bool { return c > 0 }), ">")
	reg(numCompare(">=", func(c int) bool { return c >= 0 }), ">=")
	reg(fnEq, "=")
	reg(fnNotEq, "not=", "!=")
	reg(fnCompare, "compare")
	reg(fnNot, "not")
	// and/or are special forms (they short-circuit); as values, passed to
	// reduce or apply, they are these functions (spec 10 §5).
	reg(fnAnd, "and")
	reg(fnOr, "or")
	reg(intPred("even?", func(n int64) bool { return n%2 == 0 }), "even?")
	reg(intPred("odd?", func(n int64) bool { return n%2 != 0 }), "odd?")
	reg(signPred("zero?", func(f float64) bool { return f == 0 }), "zero?")
	reg(signPred("pos?", func(f float64) bool { return f > 0 }), "pos?")
	reg(signPred("neg?", func(f float64) bool { return f < 0 }), "neg?")

	// Type predicates and conversions.
	for name, kinds := range typePredicates {
		reg(kindPred(name, kinds...), name)
	}
	reg(fnTypeOf, "type-of", "type")
	reg(fnKeyword, "keyword")
	reg(fnSymbol, "symbol")
	reg(fnName, "name")
	reg(fnInt, "int")
	reg(fnFloat, "float", "double")
	reg(fnParseInt, "parse-int")
	reg(fnParseFloat, "parse-float")
	reg(fnTypeName, "type-name")
	reg(fnIdentity, "identity")

	// Collections.
	reg(fnVector, "vector")
	reg(fnList, "list")
	reg(fnVec, "vec")
	reg(fnHashMap, "hash-map")
	reg(fnGet, "get")
	reg(fnGetIn, "get-in")
	reg(fnAssoc, "assoc")
	reg(fnAssocIn, "assoc-in")
	reg(fnDissoc, "dissoc")
	reg(fnUpdate, "update")
	reg(fnUpdateIn, "update-in")
	reg(fnMerge, "merge")
	reg(fnConj, "conj")
	reg(fnCons, "cons")
	reg(fnInto, "into")
	reg(seqFn1("first", func(it []Value) (Value, error) { return at(it, 0), nil }), "first")
	reg(seqFn1("second", func(it []Value) (Value, error) { return at(it, 1), nil }), "second")
	reg(seqFn1("last", func(it []Value) (Value, error) { return at(it, len(it)-1), nil }), "last")
	reg(seqFn1("rest", func(it []Value) (Value, error) { return restOf(it), nil }), "rest")
	reg(seqFn1("next", func(it []Value) (Value, error) { return nextOf(it), nil }), "next")
	reg(seqFn1("butlast", func(it []Value) (Value, error) { return butlast(it), nil }), "butlast")
	reg(seqFn1("reverse", reverseOf), "reverse")
	reg(fnNth, "nth")
	reg(countFn("count"), "count")
	reg(countFn("length"), "length")
	reg(fnEmpty, "empty?")
	reg(fnSeq, "seq")
	reg(fnConcat, "concat")
	reg(fnMap, "map", "mapv")
	reg(fnMapIndexed, "map-indexed")
	reg(filterFn("filter", true), "filter", "filterv")
	reg(filterFn("remove", false), "remove")
	reg(fnReduce, "reduce")
	reg(fnRange, "range")
	reg(fnNumbers, "numbers")
	reg(fnFind, "find")
	reg(fnKeys, "keys")
	reg(fnVals, "vals")
	reg(fnContains, "contains?")
	reg(fnSort, "sort")
	reg(fnSortBy, "sort-by")
	reg(fnDistinct, "distinct")
	reg(fnZipmap, "zipmap")
	reg(fnPartition, "partition")
	reg(fnPartitionBy, "partition-by")
	reg(fnFrequencies, "frequencies")
	reg(fnGroupBy, "group-by")
	reg(predFn("every?", true), "every?")
	reg(predFn("some", false), "some")
	reg(takeDrop("take"), "take")
	reg(takeDrop("drop"), "drop")
	reg(fnSubvec, "subvec")
	reg(fnApply, "apply")
	reg(fnSelectKeys, "select-keys")
	reg(fnRenameKeys, "rename-keys")
	reg(entryPart("key", 0), "key")
	reg(entryPart("val", 1), "val")
	reg(fnWithMeta, "with-meta")
	reg(fnMeta, "meta")
	reg(fnRepeat, "repeat")
	reg(fnFlatten, "flatten")
	reg(fnInterleave, "interleave")
	reg(fnSet, "set", "hash-set")

	// Strings.
	reg(fnStr, "str")
	reg(fnSubs, "subs", "substring")
	reg(fnJoin, "string/join", "str/join", "join")
	reg(fnSplit, "string/split", "str/split", "split")
	each := func(mk func(name string) NativeFunc, names ...string) {
		for _, n := range names {
			reg(mk(n), n)
		}
	}
	each(func(n string) NativeFunc { return strFn(n, strings.ToUpper) }, "string/upper-case", "str/upper-case", "upper-case", "upper", "string-upper")
	each(func(n string) NativeFunc { return strFn(n, strings.ToLower) }, "string/lower-case", "str/lower-case", "lower-case", "lower", "string-lower")
	each(func(n string) NativeFunc { return strFn(n, strings.TrimSpace) }, "string/trim", "str/trim", "trim", "string-trim")
	reg(fnStringLength, "string-length")
	reg(fnStringJoin, "string-join")
	each(func(n string) NativeFunc { return strPred(n, strings.Contains) }, "string-contains?", "string-contains")
	reg(fnReMatches, "re-matches")
	reg(fnReFind, "re-find")
	reg(fnReSeq, "re-seq")
	reg(strPred("starts-with?", strings.HasPrefix), "string/starts-with?", "str/starts-with?", "starts-with?")
	reg(strPred("ends-with?", strings.HasSuffix), "string/ends-with?", "str/ends-with?", "ends-with?")
	reg(strPred("includes?", strings.Contains), "string/includes?", "str/includes?", "includes?")
	reg(fnReplace, "string/replace", "str/replace", "replace")
	reg(fnBlank, "string/blank?", "str/blank?", "blank?")

	// Output, state, errors, effects, JSON.
	reg(printFn("println", true), "println")
	reg(printFn("print", false), "print")
	reg(fnLog, "log")
	reg(fnPrStr, "pr-str")
	reg(fnAtom, "atom")
	reg(fnDeref, "deref")
	reg(fnReset, "reset!")
	reg(fnSwap, "swap!")
	reg(fnThrow, "throw")
	reg(fnErrorNew, "error")
	reg(fnExInfo, "ex-info")
	reg(errorAccessor("message"), "error-message", "ex-message", ".getMessage")
	reg(errorAccessor("type"), "error-type")
	reg(errorAccessor("data"), "error-data", "ex-data")
	reg(fnCall, "call")
	reg(fnSleep, "thread/sleep", "sleep")
	reg(fnJSONParse, "json/parse", "parse-json")
	reg(fnJSONStringify, "json/stringify", "to-json", "serialize-json")
}

func at(items []Value, i int) Value {
	if i < 0 || i >= len(items) {
		return Nil{}
	}
	return items[i]
}

func restOf(items []Value) Value {
	if len(items) <= 1 {
		return vec(nil)
	}
	return vec(append([]Value(nil), items[1:]...))
}

func nextOf(items []Value) Value {
	if len(items) <= 1 {
		return Nil{}
	}
	return vec(append([]Value(nil), items[1:]...))
}

func butlast(items []Value) Value {
	if len(items) <= 1 {
		return Nil{}
	}
	return vec(append([]Value(nil), items[:len(items)-1]...))
}

func reverseOf(items []Value) (Value, error) {
	out := make([]Value, len(items))
	for i, it := range items {
		out[len(items)-1-i] = it
	}
	return vec(out), nil
}

func fnEq(in *Interp, args []Value) (Value, error) {
	if err := arity("=", args, 1, -1); err != nil {
		return nil, err
	}
	if err := in.checkTree(args[0], "="); err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(args); i++ {
		if !Equal(args[i], args[i+1]) {
			return mkBool(false), nil
		}
	}
	return mkBool(true), nil
}

func fnNotEq(in *Interp, args []Value) (Value, error) {
	v, err := fnEq(in, args)
	if err != nil {
		return nil, err
	}
	return mkBool(!v.(Bool).V), nil
}

// fnAnd returns the first falsy argument, or the last one (true for none).
func fnAnd(_ *Interp, args []Value) (Value, error) {
	var v Value = Bool{V: true}
	for _, v = range args {
		if !Truthy(v) {
			return v, nil
		}
	}
	return v, nil
}

// fnOr returns the first truthy argument, or the last one (nil for none).
func fnOr(_ *Interp, args []Value) (Value, error) {
	var v Value = Nil{}
	for _, v = range args {
		if Truthy(v) {
			return v, nil
		}
	}
	return v, nil
}

func fnNot(_ *Interp, args []Value) (Value, error) {
	if err := arity("not", args, 1, 1); err != nil {
		return nil, err
	}
	return mkBool(!Truthy(args[0])), nil
}

var typePredicates = map[string][]Kind{
	"nil?": {KindNil}, "number?": {KindInt, KindFloat}, "int?": {KindInt}, "integer?": {KindInt},
	"float?": {KindFloat}, "double?": {KindFloat}, "string?": {KindString}, "keyword?": {KindKeyword},
	"symbol?": {KindSymbol}, "vector?": {KindVector}, "map?": {KindMap}, "list?": {KindList},
	"fn?": {KindFunc}, "function?": {KindFunc}, "boolean?": {KindBool}, "bool?": {KindBool},
	"atom?": {KindAtom}, "error?": {KindError}, "timestamp?": {KindTimestamp}, "uuid?": {KindUUID},
	"resource?": {KindResource}, "coll?": {KindVector, KindList, KindMap}, "seq?": {KindList},
	"sequential?": {KindVector, KindList},
}

func kindPred(fn string, kinds ...Kind) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 1, 1); err != nil {
			return nil, err
		}
		k := args[0].Kind()
		for _, want := range kinds {
			if k == want {
				return mkBool(true), nil
			}
		}
		return mkBool(false), nil
	}
}

// typeNames are the keywords returned by type-of, which are also the
// primitive type names accepted in annotations.
var typeNames = map[Kind]string{
	KindNil: "nil", KindBool: "bool", KindInt: "int", KindFloat: "float", KindString: "string",
	KindKeyword: "keyword", KindSymbol: "symbol", KindList: "list", KindVector: "vector",
	KindMap: "map", KindTimestamp: "timestamp", KindUUID: "uuid", KindResource: "resource",
	KindFunc: "fn", KindAtom: "atom", KindError: "error",
}

func fnTypeOf(_ *Interp, args []Value) (Value, error) {
	if err := arity("type-of", args, 1, 1); err != nil {
		return nil, err
	}
	if n, ok := typeNames[args[0].Kind()]; ok {
		return Keyword{Name: n}, nil
	}
	return Keyword{Name: "value"}, nil
}

func fnKeyword(_ *Interp, args []Value) (Value, error) {
	if err := arity("keyword", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case Keyword:
		return x, nil
	case String:
		if x.V == "" {
			return nil, newError(ErrValue, "keyword: the name must not be empty")
		}
		return Keyword{Name: x.V}, nil
	case Symbol:
		return Keyword{Name: x.Name}, nil
	}
	return nil, newError(ErrType, "keyword expects a string, symbol or keyword, got %s", describe(args[0]))
}

func fnSymbol(_ *Interp, args []Value) (Value, error) {
	if err := arity("symbol", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case Symbol:
		return x, nil
	case String:
		if x.V == "" {
			return nil, newError(ErrValue, "symbol: the name must not be empty")
		}
		return Symbol{Name: x.V}, nil
	case Keyword:
		return Symbol{Name: x.Name}, nil
	}
	return nil, newError(ErrType, "symbol expects a string, symbol or keyword, got %s", describe(args[0]))
}

func fnName(_ *Interp, args []Value) (Value, error) {
	if err := arity("name", args, 1, 1); err != nil {
		return nil, err
	}
	var n string
	switch x := args[0].(type) {
	case Keyword:
		n = x.Name
	case Symbol:
		n = x.Name
	case String:
		return x, nil
	default:
		return nil, newError(ErrType, "name expects a keyword, symbol or string, got %s", describe(args[0]))
	}
	if i := strings.LastIndexByte(n, '/'); i >= 0 && i < len(n)-1 {
		n = n[i+1:]
	}
	return String{V: n}, nil
}

// fnInt coerces a value to an integer (spec 10 §6): floats are truncated
// toward zero, numeric strings parsed ("42", "3.7"), booleans give 1 or 0
// and nil gives 0. A string that is not a number is a ValueError, not a
// silent 0.
func fnInt(_ *Interp, args []Value) (Value, error) {
	if err := arity("int", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case Int:
		return x, nil
	case Float:
		return truncFloat("int", x.V)
	case String:
		t := strings.TrimSpace(x.V)
		if n, err := strconv.ParseInt(t, 10, 64); err == nil {
			return Int{V: n}, nil
		}
		if f, err := strconv.ParseFloat(t, 64); err == nil {
			return truncFloat("int", f)
		}
		return nil, newError(ErrValue, "int: cannot parse %s as a number", QuoteString(x.V))
	case Bool:
		if x.V {
			return Int{V: 1}, nil
		}
		return Int{V: 0}, nil
	case Nil:
		return Int{V: 0}, nil
	}
	return nil, newError(ErrType, "int expects a number, a numeric string, a boolean or nil, got %s", describe(args[0]))
}

func truncFloat(fn string, f float64) (Value, error) {
	if math.IsNaN(f) || math.Abs(f) >= 9.2e18 {
		return nil, newError(ErrArithmetic, "%s: %v does not fit in a 64-bit integer", fn, f)
	}
	return Int{V: int64(f)}, nil
}

// fnFloat coerces a value to a float, as int does.
func fnFloat(_ *Interp, args []Value) (Value, error) {
	if err := arity("float", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case Int:
		return Float{V: float64(x.V)}, nil
	case Float:
		return x, nil
	case String:
		f, err := strconv.ParseFloat(strings.TrimSpace(x.V), 64)
		if err != nil {
			return nil, newError(ErrValue, "float: cannot parse %s as a number", QuoteString(x.V))
		}
		return Float{V: f}, nil
	case Bool:
		if x.V {
			return Float{V: 1}, nil
		}
		return Float{V: 0}, nil
	case Nil:
		return Float{V: 0}, nil
	}
	return nil, newError(ErrType, "float expects a number, a numeric string, a boolean or nil, got %s", describe(args[0]))
}

// fnParseInt parses a string to an integer (spec 10 §6), giving nil when
// the string is not an integer, so that (or (parse-int s) 0) reads input.
// Numbers are converted as by int; nil gives nil.
func fnParseInt(in *Interp, args []Value) (Value, error) {
	if err := arity("parse-int", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case String:
		if n, err := strconv.ParseInt(strings.TrimSpace(x.V), 10, 64); err == nil {
			return Int{V: n}, nil
		}
		return Nil{}, nil
	case Int, Float:
		return fnInt(in, args)
	case Nil:
		return Nil{}, nil
	}
	return nil, newError(ErrType, "parse-int expects a string, got %s", describe(args[0]))
}

// fnParseFloat parses a string to a float, giving nil when it is not a
// finite number.
func fnParseFloat(in *Interp, args []Value) (Value, error) {
	if err := arity("parse-float", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case String:
		f, err := strconv.ParseFloat(strings.TrimSpace(x.V), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return Nil{}, nil
		}
		return Float{V: f}, nil
	case Int, Float:
		return fnFloat(in, args)
	case Nil:
		return Nil{}, nil
	}
	return nil, newError(ErrType, "parse-float expects a string, got %s", describe(args[0]))
}

// fnTypeName is (type-name v): the name of the value's type as the
// string of its type keyword, such as ":int" or ":vector" (spec 10 §8).
func fnTypeName(_ *Interp, args []Value) (Value, error) {
	if err := arity("type-name", args, 1, 1); err != nil {
		return nil, err
	}
	if n, ok := typeNames[args[0].Kind()]; ok {
		return String{V: ":" + n}, nil
	}
	return String{V: ":value"}, nil
}

func fnIdentity(_ *Interp, args []Value) (Value, error) {
	if err := arity("identity", args, 1, 1); err != nil {
		return nil, err
	}
	return args[0], nil
}

func fnSet(*Interp, []Value) (Value, error) {
	return nil, newError(ErrNotSupported, "sets are not part of RTFS; use (distinct coll) for unique elements and contains? on it for membership")
}

// display is how str and println show a value: strings without quotes,
// nil as nothing, everything else in canonical form.
func display(v Value) string {
	switch x := v.(type) {
	case String:
		return x.V
	case Nil:
		return ""
	}
	return short(v)
}

func (in *Interp) buildString(fn string, args []Value, sep string) (string, error) {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteString(sep)
		}
		switch x := a.(type) {
		case String:
			b.WriteString(x.V)
		case Nil:
		default:
			printBounded(&b, a, in.lim.MaxCollection)
		}
		if b.Len() > in.lim.MaxCollection {
			return "", newError(ErrLimit, "%s: string longer than %d bytes (Limits.MaxCollection)", fn, in.lim.MaxCollection)
		}
	}
	return b.String(), nil
}

func fnStr(in *Interp, args []Value) (Value, error) {
	s, err := in.buildString("str", args, "")
	if err != nil {
		return nil, err
	}
	return String{V: s}, nil
}

func fnPrStr(in *Interp, args []Value) (Value, error) {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if !printBounded(&b, a, in.lim.MaxCollection) {
			return nil, newError(ErrLimit, "pr-str: string longer than %d bytes (Limits.MaxCollection)", in.lim.MaxCollection)
		}
	}
	return String{V: b.String()}, nil
}

// write appends to the captured output, enforcing Limits.MaxOutput.
func (in *Interp) write(s string) error {
	if in.out.Len()+len(s) > in.lim.MaxOutput {
		return newError(ErrLimit, "output larger than %d bytes (Limits.MaxOutput)", in.lim.MaxOutput)
	}
	in.out.WriteString(s)
	return nil
}

func printFn(fn string, newline bool) NativeFunc {
	return func(in *Interp, args []Value) (Value, error) {
		s, err := in.buildString(fn, args, " ")
		if err != nil {
			return nil, err
		}
		if newline {
			s += "\n"
		}
		return Nil{}, in.write(s)
	}
}

// fnLog writes one line "[log] ..." to the captured output.
func fnLog(in *Interp, args []Value) (Value, error) {
	s, err := in.buildString("log", args, " ")
	if err != nil {
		return nil, err
	}
	return Nil{}, in.write("[log] " + s + "\n")
}

func fnAtom(_ *Interp, args []Value) (Value, error) {
	if err := arity("atom", args, 1, 1); err != nil {
		return nil, err
	}
	return &Atom{V: args[0]}, nil
}

func atomArg(fn string, v Value) (*Atom, error) {
	a, ok := v.(*Atom)
	if !ok {
		return nil, newError(ErrType, "%s expects an atom, got %s", fn, describe(v))
	}
	return a, nil
}

func fnDeref(_ *Interp, args []Value) (Value, error) {
	if err := arity("deref", args, 1, 1); err != nil {
		return nil, err
	}
	a, err := atomArg("deref", args[0])
	if err != nil {
		return nil, err
	}
	return a.V, nil
}

func fnReset(_ *Interp, args []Value) (Value, error) {
	if err := arity("reset!", args, 2, 2); err != nil {
		return nil, err
	}
	a, err := atomArg("reset!", args[0])
	if err != nil {
		return nil, err
	}
	a.V = args[1]
	return a.V, nil
}

func fnSwap(in *Interp, args []Value) (Value, error) {
	if err := arity("swap!", args, 2, -1); err != nil {
		return nil, err
	}
	a, err := atomArg("swap!", args[0])
	if err != nil {
		return nil, err
	}
	v, err := in.callback(args[1], append([]Value{a.V}, args[2:]...)...)
	if err != nil {
		return nil, err
	}
	a.V = v
	return v, nil
}

// fnThrow raises a value: an error value is re-raised; a map with :type and
// :message keys gives an error of that type; anything else a UserError.
func fnThrow(_ *Interp, args []Value) (Value, error) {
	if err := arity("throw", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case *Error:
		c := *x
		c.S, c.Stack = Span{}, nil
		if !c.Catchable() {
			c.Type = ErrUser
		}
		return nil, &c
	case *Map:
		e := &Error{Type: ErrUser, Message: "thrown " + short(x), Data: x}
		if t, ok := x.GetKeyword("type"); ok {
			if n := display(t); n != "" && n != ErrLimit && n != ErrCancelled && n != ErrInternal {
				e.Type = strings.TrimPrefix(n, ":")
			}
		}
		if m, ok := x.GetKeyword("message"); ok {
			e.Message = display(m)
		}
		return nil, e
	case String:
		return nil, &Error{Type: ErrUser, Message: x.V}
	}
	return nil, &Error{Type: ErrUser, Message: "thrown " + short(args[0]), Data: args[0]}
}

func fnErrorNew(_ *Interp, args []Value) (Value, error) {
	if err := arity("error", args, 1, 2); err != nil {
		return nil, err
	}
	e := &Error{Type: ErrUser, Message: display(args[0])}
	if len(args) == 2 {
		e.Data = args[1]
	}
	return nil, e
}

// fnExInfo builds an error value without raising it: (throw (ex-info msg data)).
func fnExInfo(_ *Interp, args []Value) (Value, error) {
	if err := arity("ex-info", args, 1, 2); err != nil {
		return nil, err
	}
	e := &Error{Type: ErrUser, Message: display(args[0])}
	if len(args) == 2 {
		e.Data = args[1]
	}
	return e, nil
}

func errorAccessor(field string) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity("error-"+field, args, 1, 1); err != nil {
			return nil, err
		}
		e, ok := args[0].(*Error)
		if !ok {
			return nil, newError(ErrType, "error-%s expects an error value, got %s", field, describe(args[0]))
		}
		return errorField(e, field), nil
	}
}

func fnCall(in *Interp, args []Value) (Value, error) {
	if err := arity("call", args, 1, -1); err != nil {
		return nil, err
	}
	var id string
	switch x := args[0].(type) {
	case Keyword:
		id = x.Name
	case String:
		id = x.V
	default:
		return nil, newError(ErrType, "call expects a capability id such as :ccos.echo, got %s", describe(args[0]))
	}
	v, err := in.host.Call(in.ctx, id, append([]Value(nil), args[1:]...))
	if err != nil {
		return nil, asError(err, ErrHost)
	}
	return orNil(v), nil
}

func fnSleep(in *Interp, args []Value) (Value, error) {
	if err := arity("sleep", args, 1, 1); err != nil {
		return nil, err
	}
	ms, err := toInt("sleep", args[0])
	if err != nil {
		return nil, err
	}
	if ms < 0 {
		return nil, newError(ErrValue, "sleep: negative duration %d ms", ms)
	}
	if err := in.sleep(in.ctx, time.Duration(ms)*time.Millisecond); err != nil {
		return nil, in.ctxErr(Span{}, err)
	}
	return Nil{}, nil
}

func sortedKeys(m map[string]*Func) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Builtins returns the names of the standard library functions, sorted.
func Builtins() []string { return sortedKeys(builtins) }
