package rtfs

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// The string functions of the standard library (spec 10 §6). Strings are
// indexed and measured in characters (runes), not bytes. Every function
// that builds a string checks the result against Limits.MaxCollection
// before allocating it.

func strArg(fn string, v Value) (string, error) {
	s, ok := v.(String)
	if !ok {
		return "", newError(ErrType, "%s expects a string, got %s", fn, describe(v))
	}
	return s.V, nil
}

func fnSubs(_ *Interp, args []Value) (Value, error) {
	if err := arity("subs", args, 2, 3); err != nil {
		return nil, err
	}
	s, err := strArg("subs", args[0])
	if err != nil {
		return nil, err
	}
	r := []rune(s)
	start, err := toInt("subs", args[1])
	if err != nil {
		return nil, err
	}
	end := int64(len(r))
	if len(args) == 3 {
		if end, err = toInt("subs", args[2]); err != nil {
			return nil, err
		}
	}
	if start < 0 || end > int64(len(r)) || start > end {
		return nil, newError(ErrIndex, "subs [%d, %d) is outside a string of %d characters", start, end, len(r))
	}
	return String{V: string(r[start:end])}, nil
}

func fnJoin(in *Interp, args []Value) (Value, error) {
	if err := arity("join", args, 1, 2); err != nil {
		return nil, err
	}
	sep := ""
	if len(args) == 2 {
		var err error
		if sep, err = strArg("join", args[0]); err != nil {
			return nil, err
		}
	}
	return in.joinWith("join", sep, args[len(args)-1])
}

func fnSplit(_ *Interp, args []Value) (Value, error) {
	if err := arity("split", args, 2, 2); err != nil {
		return nil, err
	}
	s, err := strArg("split", args[0])
	if err != nil {
		return nil, err
	}
	sep, err := strArg("split", args[1])
	if err != nil {
		return nil, err
	}
	parts := strings.Split(s, sep)
	out := make([]Value, len(parts))
	for i, p := range parts {
		out[i] = String{V: p}
	}
	return vec(out), nil
}

// strFn is a string-to-string function; the result (case mapping may
// lengthen a string a little) is checked against Limits.MaxCollection.
func strFn(fn string, f func(string) string) NativeFunc {
	return func(in *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 1, 1); err != nil {
			return nil, err
		}
		s, err := strArg(fn, args[0])
		if err != nil {
			return nil, err
		}
		out := f(s)
		if err := in.checkSize(len(out), fn+" result"); err != nil {
			return nil, err
		}
		return String{V: out}, nil
	}
}

func strPred(fn string, f func(string, string) bool) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 2, 2); err != nil {
			return nil, err
		}
		s, err := strArg(fn, args[0])
		if err != nil {
			return nil, err
		}
		t, err := strArg(fn, args[1])
		if err != nil {
			return nil, err
		}
		return mkBool(f(s, t)), nil
	}
}

func containsStr(s, sub string) bool { return strings.Contains(s, sub) }

func fnReplace(in *Interp, args []Value) (Value, error) {
	if err := arity("replace", args, 3, 3); err != nil {
		return nil, err
	}
	var ss [3]string
	for i, a := range args {
		var err error
		if ss[i], err = strArg("replace", a); err != nil {
			return nil, err
		}
	}
	if ss[1] == "" {
		return nil, newError(ErrValue, "replace: the string to replace must not be empty")
	}
	n := strings.Count(ss[0], ss[1])
	if len(ss[0])+n*(len(ss[2])-len(ss[1])) > in.lim.MaxCollection {
		return nil, newError(ErrLimit, "replace: result longer than %d bytes (Limits.MaxCollection)", in.lim.MaxCollection)
	}
	return String{V: strings.ReplaceAll(ss[0], ss[1], ss[2])}, nil
}

func fnBlank(_ *Interp, args []Value) (Value, error) {
	if err := arity("blank?", args, 1, 1); err != nil {
		return nil, err
	}
	if _, ok := args[0].(Nil); ok {
		return mkBool(true), nil
	}
	s, err := strArg("blank?", args[0])
	if err != nil {
		return nil, err
	}
	return mkBool(strings.TrimSpace(s) == ""), nil
}

func fnStringLength(_ *Interp, args []Value) (Value, error) {
	if err := arity("string-length", args, 1, 1); err != nil {
		return nil, err
	}
	s, err := strArg("string-length", args[0])
	if err != nil {
		return nil, err
	}
	return Int{V: int64(utf8.RuneCountInString(s))}, nil
}

// fnStringJoin is (string-join sep coll) (spec 10 §6). The arguments are
// also accepted the other way round, (string-join coll sep), since the
// collection cannot be mistaken for the separator.
func fnStringJoin(in *Interp, args []Value) (Value, error) {
	if err := arity("string-join", args, 1, 2); err != nil {
		return nil, err
	}
	if len(args) == 1 {
		return in.joinWith("string-join", "", args[0])
	}
	sep, coll := args[0], args[1]
	if _, ok := sep.(String); !ok {
		if _, ok := coll.(String); ok {
			sep, coll = coll, sep
		}
	}
	s, err := strArg("string-join", sep)
	if err != nil {
		return nil, newError(ErrType, "string-join expects a separator string and a collection, got %s", describe(sep))
	}
	return in.joinWith("string-join", s, coll)
}

func (in *Interp) joinWith(fn, sep string, coll Value) (Value, error) {
	items, err := seqArg(fn, coll)
	if err != nil {
		return nil, err
	}
	s, err := in.buildString(fn, items, sep)
	if err != nil {
		return nil, err
	}
	return String{V: s}, nil
}

// regexpCost is the work, in (input character x program instruction)
// units, billed as one evaluation step: matching is linear in both (Go's
// RE2 engine never backtracks), and cannot be interrupted once started,
// so its cost is charged to the step budget before it runs.
const regexpCost = 16

// maxPatternLen bounds the source of a regular expression.
const maxPatternLen = 4096

// maxRegexps bounds the compiled expressions an interpreter keeps.
const maxRegexps = 64

type compiledRegexp struct {
	re    *regexp.Regexp
	insts int // size of the compiled program
}

// regexpArg compiles a pattern argument (cached per interpreter); anchored
// requires the match to cover the whole text (re-matches).
func (in *Interp) regexpArg(fn string, v Value, anchored bool) (compiledRegexp, error) {
	pat, err := strArg(fn, v)
	if err != nil {
		return compiledRegexp{}, newError(ErrType, "%s expects a regular expression string as its first argument, got %s", fn, describe(v))
	}
	if len(pat) > maxPatternLen {
		return compiledRegexp{}, newError(ErrLimit, "%s: regular expression of %d bytes exceeds the limit of %d", fn, len(pat), maxPatternLen)
	}
	key := pat
	if anchored {
		key = "\x00" + pat
	}
	if c, ok := in.regexps[key]; ok {
		return c, nil
	}
	src := pat
	if anchored {
		src = `\A(?:` + pat + `)\z`
	}
	re, err := regexp.Compile(src)
	if err != nil {
		e := newError(ErrValue, "%s: invalid regular expression %s: %v", fn, QuoteString(pat), err)
		e.Hint = "patterns use RE2 syntax: no backreferences or lookaround"
		return compiledRegexp{}, e
	}
	parsed, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return compiledRegexp{}, newError(ErrValue, "%s: invalid regular expression %s: %v", fn, QuoteString(pat), err)
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return compiledRegexp{}, newError(ErrValue, "%s: invalid regular expression %s: %v", fn, QuoteString(pat), err)
	}
	c := compiledRegexp{re: re, insts: len(prog.Inst)}
	if in.regexps == nil || len(in.regexps) >= maxRegexps {
		in.regexps = make(map[string]compiledRegexp)
	}
	in.regexps[key] = c
	return c, nil
}

// regexpArgs reads (fn pattern text): a nil text matches nothing.
func (in *Interp) regexpArgs(fn string, args []Value, anchored bool) (compiledRegexp, string, bool, error) {
	if err := arity(fn, args, 2, 2); err != nil {
		return compiledRegexp{}, "", false, err
	}
	c, err := in.regexpArg(fn, args[0], anchored)
	if err != nil {
		return compiledRegexp{}, "", false, err
	}
	if _, ok := args[1].(Nil); ok {
		return c, "", false, nil
	}
	text, err := strArg(fn, args[1])
	if err != nil {
		return compiledRegexp{}, "", false, err
	}
	if err := in.charge(len(text) * c.insts * 8 / regexpCost); err != nil {
		return compiledRegexp{}, "", false, err
	}
	return c, text, true, nil
}

// matchValue is a match as RTFS returns it: the matched string, or with
// groups in the pattern a vector of the match and each group (nil for a
// group that did not take part).
func matchValue(re *regexp.Regexp, text string, loc []int) Value {
	if re.NumSubexp() == 0 {
		return String{V: text[loc[0]:loc[1]]}
	}
	out := make([]Value, 0, len(loc)/2)
	for i := 0; i+1 < len(loc); i += 2 {
		if loc[i] < 0 {
			out = append(out, Nil{})
			continue
		}
		out = append(out, String{V: text[loc[i]:loc[i+1]]})
	}
	return vec(out)
}

// fnReMatches is (re-matches pattern text): the match if the pattern
// matches the whole text, else nil.
func fnReMatches(in *Interp, args []Value) (Value, error) {
	c, text, ok, err := in.regexpArgs("re-matches", args, true)
	if err != nil || !ok {
		return Nil{}, err
	}
	loc := c.re.FindStringSubmatchIndex(text)
	if loc == nil {
		return Nil{}, nil
	}
	return matchValue(c.re, text, loc), nil
}

// fnReFind is (re-find pattern text): the first match, or nil.
func fnReFind(in *Interp, args []Value) (Value, error) {
	c, text, ok, err := in.regexpArgs("re-find", args, false)
	if err != nil || !ok {
		return Nil{}, err
	}
	loc := c.re.FindStringSubmatchIndex(text)
	if loc == nil {
		return Nil{}, nil
	}
	return matchValue(c.re, text, loc), nil
}

// fnReSeq is (re-seq pattern text): a vector of every match.
func fnReSeq(in *Interp, args []Value) (Value, error) {
	c, text, ok, err := in.regexpArgs("re-seq", args, false)
	if err != nil {
		return nil, err
	}
	if !ok {
		return vec(nil), nil
	}
	locs := c.re.FindAllStringSubmatchIndex(text, -1)
	if err := in.checkSize(len(locs), "re-seq result"); err != nil {
		return nil, err
	}
	out := make([]Value, len(locs))
	for i, loc := range locs {
		out[i] = matchValue(c.re, text, loc)
	}
	return vec(out), nil
}
