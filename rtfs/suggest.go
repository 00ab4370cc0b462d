package rtfs

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// This file finds the names a misspelt or foreign name probably meant:
// schema keys for the type checker (Closest), and defined names for an
// unbound symbol (Interp.suggest). Programs are often written by models
// that know Clojure, Common Lisp or Scheme better than RTFS, so an unbound
// symbol is looked up in a table of well-known names of those languages
// before the edit distance is tried.

// Closest returns the candidate nearest to name by edit distance (with '_'
// and '-' equal), or "" when none is near enough to be a likely typo. Ties
// go to the earliest candidate.
func Closest(name string, cands []string) string {
	best, bestD := "", -1
	fn := FoldKey(strings.ToLower(name))
	for _, c := range cands {
		d := editDistance(fn, FoldKey(strings.ToLower(c)))
		if strings.HasPrefix(FoldKey(c), fn) || strings.HasPrefix(fn, FoldKey(c)) {
			d = min(d, 1)
		}
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > typoLimit(name) {
		return ""
	}
	return best
}

// typoLimit is the largest edit distance still taken for a typo of name:
// none for names under three characters, a third of the length above.
func typoLimit(name string) int {
	if n := utf8.RuneCountInString(name); n >= 3 {
		return max(1, n/3)
	}
	return 0
}

// editDistance is the optimal-string-alignment distance between a and b,
// in runes: the insertions, deletions, substitutions and transpositions of
// two adjacent runes that turn a into b (a swap is the commonest typo).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rows: two back (for transpositions), previous and current.
	pp := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], pp[j-2]+1)
			}
		}
		pp, prev, cur = prev, cur, pp
	}
	return prev[len(rb)]
}

// maxSuggestions bounds the names offered for one unbound symbol.
const maxSuggestions = 3

// maxSuggestLen bounds the length of a name compared by edit distance,
// so that a huge symbol costs nothing to report.
const maxSuggestLen = 64

// nearestNames returns up to n candidates within typo distance of name,
// nearest first (ties in alphabetical order). Case and the '_'/'-'
// spelling are ignored.
func nearestNames(name string, cands []string, n int) []string {
	if utf8.RuneCountInString(name) > maxSuggestLen {
		return nil
	}
	limit := typoLimit(name)
	if limit == 0 {
		return nil
	}
	fn := FoldKey(strings.ToLower(name))
	nl := utf8.RuneCountInString(fn)
	type hit struct {
		name string
		d    int
	}
	var hits []hit
	for _, c := range cands {
		cl := utf8.RuneCountInString(c)
		if cl-nl > limit || nl-cl > limit || c == name {
			continue
		}
		if d := editDistance(fn, FoldKey(strings.ToLower(c))); d <= limit {
			hits = append(hits, hit{c, d})
		}
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].d != hits[j].d {
			return hits[i].d < hits[j].d
		}
		return hits[i].name < hits[j].name
	})
	var out []string
	for _, h := range hits {
		if len(out) == n {
			break
		}
		out = append(out, h.name)
	}
	return out
}

// foreignNames maps names that Clojure, Common Lisp, Scheme (and a few
// other languages) use for things RTFS spells differently to the RTFS
// names. Every target is a standard function or special form
// (TestForeignNamesResolve).
var foreignNames = map[string][]string{
	// Lists and sequences.
	"car": {"first"}, "cdr": {"rest"}, "cadr": {"second"}, "head": {"first"}, "tail": {"rest"},
	"list-ref": {"nth"}, "elt": {"nth"}, "vector-ref": {"nth"}, "aref": {"nth"}, "nthcdr": {"drop"},
	"list-tail": {"drop"}, "append": {"concat"}, "mapcar": {"map"}, "vector-map": {"map"},
	"mapcat": {"map", "concat"}, "flatmap": {"map", "concat"}, "for-each": {"doseq"},
	"foreach": {"doseq"}, "remove-if": {"remove"}, "remove-if-not": {"filter"}, "select": {"filter"},
	"keep": {"filter"}, "foldl": {"reduce"}, "fold-left": {"reduce"}, "fold": {"reduce"},
	"reduce-kv": {"reduce"}, "inject": {"reduce"}, "uniq": {"distinct"}, "unique": {"distinct"},
	"dedupe": {"distinct"}, "remove-duplicates": {"distinct"}, "delete-duplicates": {"distinct"},
	"zip": {"zipmap", "interleave"}, "iota": {"range", "numbers"}, "push": {"conj"},
	"vector-push": {"conj"}, "vector-append": {"conj"}, "list->vector": {"vec"},
	"any?": {"some"}, "all?": {"every?"}, "every": {"every?"}, "count-if": {"filter", "count"},
	"sort-on": {"sort-by"}, "slice": {"subvec", "subs"},
	// Sizes.
	"len": {"count", "length"}, "size": {"count", "length"}, "strlen": {"count", "string-length"},
	"string-size": {"count", "string-length"}, "vector-length": {"count", "length"},
	"list-length": {"count", "length"},
	// Definitions and control.
	"defun": {"defn"}, "define": {"def", "defn"}, "defvar": {"def"}, "defparameter": {"def"},
	"defconst": {"def"}, "defconstant": {"def"}, "setq": {"def", "reset!"}, "setf": {"def", "reset!"},
	"set!": {"def", "reset!"}, "progn": {"do"}, "begin": {"do"}, "let*": {"let"}, "letrec": {"let"},
	"labels": {"let", "defn"}, "flet": {"let", "defn"}, "function": {"fn"}, "funcall": {"apply"},
	"raise": {"throw", "error"}, "signal": {"throw", "error"}, "handler-case": {"try"},
	"with-exception-handler": {"try"}, "guard": {"try"}, "unless": {"when-not"},
	// Equality and predicates.
	"eq": {"="}, "eql": {"="}, "equal": {"="}, "eq?": {"="}, "eqv?": {"="}, "equal?": {"="},
	"equals": {"="}, "/=": {"not=", "!="}, "not-equal": {"!="}, "null": {"nil?", "empty?"},
	"null?": {"nil?", "empty?"}, "endp": {"empty?"}, "zerop": {"zero?"}, "evenp": {"even?"},
	"oddp": {"odd?"}, "plusp": {"pos?"}, "minusp": {"neg?"}, "numberp": {"number?"},
	"stringp": {"string?"}, "symbolp": {"symbol?"}, "keywordp": {"keyword?"}, "listp": {"list?"},
	"vectorp": {"vector?"}, "functionp": {"fn?"}, "procedure?": {"fn?"}, "integerp": {"int?"},
	"floatp": {"float?"}, "hash-table-p": {"map?"}, "consp": {"list?"}, "typeof": {"type-name"},
	"class": {"type-name"}, "class-of": {"type-name"},
	// Maps.
	"make-hash-table": {"hash-map"}, "hash-table": {"hash-map"}, "make-hash": {"hash-map"},
	"dict": {"hash-map"}, "array-map": {"hash-map"}, "sorted-map": {"hash-map"},
	"gethash": {"get"}, "hash-ref": {"get"}, "hash-table-ref": {"get"}, "dict-get": {"get"},
	"remhash": {"dissoc"}, "puthash": {"assoc"}, "hash-set!": {"assoc"}, "hash-keys": {"keys"},
	"hash-table-keys": {"keys"}, "hash-values": {"vals"}, "contains": {"contains?"},
	"includes": {"contains?", "includes?"}, "has-key?": {"contains?"}, "has?": {"contains?"},
	"assoc!": {"assoc"}, "conj!": {"conj"},
	// Strings.
	"string-append": {"str"}, "concatenate": {"str", "concat"}, "format": {"str"}, "sprintf": {"str"},
	"to-string": {"str"}, "tostring": {"str"}, "toString": {"str"}, "number->string": {"str"},
	"string-upcase": {"upper-case", "string-upper"}, "upcase": {"upper-case", "upper"},
	"to-upper": {"upper-case", "upper"}, "toupper": {"upper-case", "upper"},
	"toUpperCase": {"upper-case", "upper"}, "uppercase": {"upper-case", "upper"},
	"string-downcase": {"lower-case", "string-lower"}, "downcase": {"lower-case", "lower"},
	"to-lower": {"lower-case", "lower"}, "tolower": {"lower-case", "lower"},
	"toLowerCase": {"lower-case", "lower"}, "lowercase": {"lower-case", "lower"},
	"strip": {"trim"}, "string-strip": {"trim", "string-trim"}, "string-split": {"split"},
	"split-string": {"split"}, "str-split": {"split"}, "join-strings": {"string-join", "join"},
	"substr": {"substring", "subs"}, "subseq": {"subs", "substring"},
	"string-includes?": {"string-contains?", "includes?"}, "string-index": {"string-contains?"},
	"string->symbol": {"symbol"}, "symbol->string": {"name"}, "keyword->string": {"name"},
	"string->keyword": {"keyword"}, "string->number": {"parse-int", "parse-float"},
	"string->list": {"seq"},
	"regex-match":  {"re-matches", "re-find"}, "string-match": {"re-find", "re-matches"},
	"re-match": {"re-matches", "re-find"}, "re-pattern": {"re-find"},
	// Numbers and conversions.
	"parseInt": {"parse-int", "int"}, "Integer/parseInt": {"parse-int"}, "parse-long": {"parse-int"},
	"parse-integer": {"parse-int"}, "string->int": {"parse-int"}, "str->int": {"parse-int"},
	"to-int": {"int"}, "atoi": {"parse-int"}, "parse-double": {"parse-float"},
	"Double/parseDouble": {"parse-float"}, "parseFloat": {"parse-float", "float"},
	"to-float": {"float"}, "atof": {"parse-float"}, "expt": {"pow"}, "modulo": {"mod"},
	"remainder": {"rem"}, "quotient": {"/"}, "truncate": {"int"}, "exact->inexact": {"float"},
	"inexact->exact": {"int"}, "fact": {"factorial"},
	// Output and JSON.
	"display": {"print", "println"}, "princ": {"print"}, "printf": {"print"}, "puts": {"println"},
	"echo": {"println"}, "print-line": {"println"}, "writeln": {"println"}, "newline": {"println"},
	"prn": {"println", "pr-str"}, "json-parse": {"parse-json"}, "from-json": {"parse-json"},
	"json/read-str": {"parse-json"}, "json/write-str": {"serialize-json"},
	"json-stringify": {"serialize-json"}, "json/encode": {"serialize-json"},
	"json/decode": {"parse-json"}, "json-encode": {"serialize-json"}, "json-decode": {"parse-json"},
}

// suggest returns the defined names that an unbound symbol probably meant:
// the RTFS names of a well-known foreign name, the same name without its
// namespace (clojure.string/upper-case), then the names nearest by edit
// distance among the locals, globals, macros and special forms.
func (in *Interp) suggest(name string, e *env) []string {
	defined := func(n string) bool {
		if _, ok := e.lookup(n); ok {
			return true
		}
		if _, ok := in.globals[n]; ok {
			return true
		}
		if _, ok := in.macros[n]; ok {
			return true
		}
		_, ok := specialForms[n]
		return ok
	}
	var out []string
	add := func(n string) {
		for _, o := range out {
			if o == n {
				return
			}
		}
		if len(out) < maxSuggestions && defined(n) {
			out = append(out, n)
		}
	}
	for _, n := range foreignNames[name] {
		add(n)
	}
	if i := strings.LastIndexByte(name, '/'); i > 0 && i < len(name)-1 {
		base := name[i+1:]
		add(base)
		add("string/" + base)
		for _, n := range foreignNames[base] {
			add(n)
		}
	}
	if len(out) > 0 || utf8.RuneCountInString(name) > maxSuggestLen {
		return out
	}
	cands := make([]string, 0, len(in.globals)+len(specialForms)+len(in.macros)+8)
	for f := e; f != nil; f = f.parent {
		cands = append(cands, f.names...)
	}
	for n := range in.globals {
		cands = append(cands, n)
	}
	for n := range in.macros {
		cands = append(cands, n)
	}
	for n := range specialForms {
		if n != "type-annotation" {
			cands = append(cands, n)
		}
	}
	// Comparing against every defined name is billed like copying them.
	if err := in.charge(len(cands) * 64); err != nil {
		return nil
	}
	for _, n := range nearestNames(name, cands, maxSuggestions) {
		add(n)
	}
	return out
}

// didYouMean formats suggestions as a hint: "did you mean: count" or "did
// you mean one of: count, length". (Many RTFS names end in a question
// mark, so the names are listed rather than asked.)
func didYouMean(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return "did you mean: " + names[0]
	}
	return "did you mean one of: " + strings.Join(names, ", ")
}
