package rtfs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func evalSrc(t *testing.T, in *Interp, src string) (Value, error) {
	t.Helper()
	forms, err := ReadString(src, "test.rtfs")
	if err != nil {
		t.Fatalf("read %q: %v", src, err)
	}
	return in.EvalForms(context.Background(), forms)
}

func TestEvalValues(t *testing.T) {
	tests := []struct{ src, want string }{
		// Numbers.
		{"(+ 1 2 3)", "6"},
		{"(+ 1 2.5)", "3.5"},
		{"(/ 10 2)", "5"},
		{"(/ 10 4)", "2.5"},
		{"(/ 2)", "0.5"},
		{"(- 5)", "-5"},
		{"(mod -7 3)", "2"},
		{"(rem -7 3)", "-1"},
		{"(max 1 5.5 3)", "5.5"},
		{"(abs -3)", "3"},
		{"(< 1 2 3)", "true"},
		{"(< 1 3 2)", "false"},
		{"(= 1 1.0)", "false"},
		{"(= [1 2] '(1 2))", "false"},
		{"(= {:a 1 :b 2} {:b 2 :a 1})", "true"},
		{"(not= 1 2)", "true"},
		// Special forms.
		{"(let [x 1 y (+ x 1)] [x y])", "[1 2]"},
		{"(let [[a b & r :as all] [1 2 3 4]] [a b r all])", "[1 2 [3 4] [1 2 3 4]]"},
		{"(let [{:keys [a b] :or {b 9} :as m} {:a 1}] [a b m])", "[1 9 {:a 1}]"},
		{"(let [{x :x [p q] :pair} {:x 1 :pair [2 3]}] [x p q])", "[1 2 3]"},
		{"(let [{:strs [s]} {\"s\" 5}] s)", "5"},
		{"(let [x:int 3] x)", "3"},
		{"(if nil 1 2)", "2"},
		{"(when true 1 2)", "2"},
		{"(when-not true 1)", "nil"},
		{"(cond false 1 (= 1 2) 2 :else 3)", "3"},
		{"(and 1 nil 2)", "nil"},
		{"(and 1 2)", "2"},
		{"(or nil false 3)", "3"},
		{"(-> 5 (- 1) (* 2))", "8"},
		{"(->> [1 2 3] (map inc) (reduce +))", "9"},
		{"'(a b)", "(a b)"},
		{"(quote sym)", "sym"},
		{"(loop [i 0 acc 0] (if (< i 5) (recur (inc i) (+ acc i)) acc))", "10"},
		{"(defn count-down [n] (if (= n 0) :done (recur (dec n)))) (count-down 100000)", ":done"},
		{"(for [x [1 2 3] y [10 20] :when (odd? x)] (+ x y))", "[11 21 13 23]"},
		{"(for [x [1 2 3 4] :while (< x 3) :let [y (* x x)]] y)", "[1 4]"},
		{"(let [a (atom 0)] (dotimes [i 5] (swap! a + i)) @a)", "10"},
		{"(let [a (atom [])] (doseq [x [1 2]] (swap! a conj x)) (deref a))", "[1 2]"},
		{"(let [a (atom 1)] (reset! a 5) @a)", "5"},
		{"(if-let [x (get {:a 1} :a)] x :none)", "1"},
		{"(when-let [x nil] :never)", "nil"},
		{"(match [1 2 3] [a & r] r)", "[2 3]"},
		{"(match {:k 1} {:k 2} :two {:k n} n)", "1"},
		{"(match 5 x :when (> x 3) :big _ :small)", ":big"},
		{"(match 2 (x :when (> x 3)) :big (y :as z) [y z])", "[2 2]"},
		{"(match :a 'b 1 :a 2)", "2"},
		{"(parallel [a 1] [b (+ 1 1)])", "[1 2]"},
		{"(deftype Pair [:tuple :int :int]) (let [p:Pair [1 2]] p)", "[1 2]"},
		{"((fn [& xs] xs))", "nil"},
		{"((fn self [n] (if (= n 0) 0 (self (dec n)))) 3)", "0"},
		{"(#(+ %1 %2) 1 2)", "3"},
		{"(with-resource [r Resource {:k 1}] (:k r))", "1"},
		// Functions in call position.
		{"(:a {:a 1})", "1"},
		{"(:b {:a 1} :d)", ":d"},
		{"({:a 1} :a)", "1"},
		{"([10 20] 1)", "20"},
		// Collections.
		{"(assoc {:a 1} :b 2)", "{:a 1 :b 2}"},
		{"(assoc [1 2] 2 3)", "[1 2 3]"},
		{"(update-in {:a {:b 1}} [:a :b] + 10)", "{:a {:b 11}}"},
		{"(conj '(1 2) 0)", "(1 2 0)"},
		{"(let [[a b] [1 2 3]] [a b])", "[1 2]"},
		{"(let [[a b c] [1 2]] [a b c])", "[1 2 nil]"},
		{"(1 2 (+ 1 2))", "(1 2 3)"},
		{"(\"a\" :b)", "(\"a\" :b)"},
		{"(into {} [[:a 1]])", "{:a 1}"},
		{"(first [])", "nil"},
		{"(into [] {})", "[]"},
		{"(conj [])", "[]"},
		{"(into [1] [2 3])", "[1 2 3]"},
		{"(rest [1])", "[]"},
		{"(nth [1 2] 5 :x)", ":x"},
		{"(reverse \"ab\")", "[\"b\" \"a\"]"},
		{"(sort-by :n [{:n 2} {:n 1}])", "[{:n 1} {:n 2}]"},
		{"(sort [\"b\" \"a\"])", "[\"a\" \"b\"]"},
		{"(zipmap [:a :b] [1 2])", "{:a 1 :b 2}"},
		{"(apply + 1 [2 3])", "6"},
		{"(some #(when (> % 1) %) [1 2 3])", "2"},
		{"(every? even? [])", "true"},
		{"(empty? \"\")", "true"},
		{"(count \"héllo\")", "5"},
		{"(range 2 10 3)", "[2 5 8]"},
		{"(take 2 (range 10))", "[0 1]"},
		{"(contains? [1 2] 2)", "true"},
		{"(flatten [1 [2 [3]]])", "[1 2 3]"},
		// Strings and conversions.
		{"(str \"a\" 1 :k nil 2.0)", "\"a1:k2.0\""},
		{"(subs \"hello\" 1 3)", "\"el\""},
		{"(string/join \", \" [1 2])", "\"1, 2\""},
		{"(split \"a,b\" \",\")", "[\"a\" \"b\"]"},
		{"(upper-case \"ab\")", "\"AB\""},
		{"(string/replace \"aXbX\" \"X\" \"-\")", "\"a-b-\""},
		{"(starts-with? \"abc\" \"ab\")", "true"},
		{"(keyword \"a\")", ":a"},
		{"(name :ns/a)", "\"a\""},
		{"(symbol \"s\")", "s"},
		{"(type-of 1.5)", ":float"},
		{"(int \"42\")", "42"},
		{"[(nil? nil) (fn? inc) (map? {}) (string? 1)]", "[true true true false]"},
		// JSON round trip.
		{"(json/stringify {:a [1 2.0 :k \":s\" nil true]})", `"{\"a\":[1,2.0,\":k\",\"::s\",null,true]}"`},
		{"(json/parse \"{\\\"a\\\": [1, 2.5, \\\":k\\\", \\\"x\\\"], \\\"not key\\\": null}\")", `{:a [1 2.5 :k "x"] "not key" nil}`},
		{"(let [v {:a [1 2.0 :k \":s\" {\"b c\" nil}]}] (= v (json/parse (json/stringify v))))", "true"},
		// Errors as values.
		{"(try (/ 1 0) (catch DivisionByZero e (error-type e)))", ":DivisionByZero"},
		{"(try (throw {:type :Oops :message \"bad\"}) (catch Oops e [(:message e) (:type e)]))", "[\"bad\" :Oops]"},
		{"(try (error \"boom\" {:x 1}) (catch e (error-data e)))", "{:x 1}"},
		{"(try (throw (ex-info \"m\" {:k 1})) (catch ExceptionInfo e (ex-message e)))", "\"m\""},
		{"(try 1 (finally 2))", "1"},
		{"(let [a (atom 0)] (try (try (/ 1 0) (finally (reset! a 1))) (catch e @a)))", "1"},
		{"(try (undefined-fn) (catch UnboundSymbol e :unbound))", ":unbound"},
		// Catch types as keywords and families (spec 04, 15).
		{"(try (/ 1 0) (catch :division-by-zero e :caught))", ":caught"},
		{"(try (+ 1 :a) (catch :type-error e :caught))", ":caught"},
		{"(try (+ 1 :a) (catch RuntimeError e :runtime) (catch Exception e :other))", ":runtime"},
		{"(try (call :x) (catch RuntimeError e :runtime) (catch HostError e :host))", ":host"},
		{"(try ((fn [x:int] x) :a) (catch ValidationError e :invalid))", ":invalid"},
		{"(try (throw (RuntimeError. \"boom\" {:k 1})) (catch RuntimeError e [(error-message e) (error-data e)]))", "[\"boom\" {:k 1}]"},
		// Standard library of spec 10.
		{"[(!= 1 2) (length \"héllo\") (type-name [1]) (factorial 5) (pow 2 10) (pow 2 -1)]", "[true 5 \":vector\" 120 1024 0.5]"},
		{"[(parse-int \"x\") (parse-int \"12\") (int \"3.9\") (int nil) (float false)]", "[nil 12 3 0 0.0]"},
		{"[(re-find \"(\\\\d+)-(\\\\d+)\" \"a 12-34 b\") (re-matches \"a|ab\" \"ab\") (re-seq \"\\\\w+\" nil)]", "[[\"12-34\" \"12\" \"34\"] \"ab\" []]"},
		{"[(string-join [\"a\" \"b\"] \"-\") (string-join [1 2]) (upper \"é\")]", "[\"a-b\" \"12\" \"É\"]"},
		{"[(reduce and [true 1 :x]) (apply or [nil false 3]) (and) (or)]", "[:x 3 true nil]"},
		{"[(find [5 6] 1) (find {:a nil} :a) (numbers -1 1)]", "[[1 6] [:a nil] [-1 0 1]]"},
		// Macros and quasiquote (spec 08).
		{"(defmacro twice [x] `(do ~x ~x)) (let [a (atom 0)] (twice (swap! a inc)) @a)", "2"},
		{"(defmacro m [x] (list 'inc x)) (m 41)", "42"},
		{"(defmacro m [] 1) (let [m (fn [] 2)] (m))", "2"},
		{"(let [x 1 xs [2 3]] `(a ~x ~@xs [~@xs] {:k ~x} `(b ~~x)))", "(a 1 2 3 [2 3] {:k 1} `(b ~1))"},
		{"(defmacro my-when [c & body] `(if ~c (do ~@body))) (defmacro my-unless [c & body] `(my-when (not ~c) ~@body)) (my-unless false :ok)", ":ok"},
		{"(case :b :a 1 (:b :c) 2 3)", "2"},
		{"(case 'x x :sym :other)", ":sym"},
		{"(case 9 1 :one :default)", ":default"},
		// Modules (spec 07).
		{"(module m (:exports [f]) (defn f [x] (g x)) (defn g [x] (* 2 x))) (import [m :as q]) [(m/f 2) (q/f 3)]", "[4 6]"},
		{"(module m (def a 1) (def b 2)) (import m :refer [a b]) [a b m/a]", "[1 2 1]"},
		{"(module m (export f) (defn f [] :f) (defn g [] :g)) (m/f)", ":f"},
		// A map that precedes the body is the condition map, not evaluated.
		{"(defn f [x] {:post [(> % 1)] :type Undefined} (* x 2)) (f 1)", "2"},
		{"(defn g {:keys [a b]} (+ a b)) (g {:a 1 :b 2})", "3"},
		{"(let [{:k v \"s\" w} {:k 1 \"s\" 2}] [v w])", "[1 2]"},
		{"(match [1 \"a\"] [(:int n) (:string s)] [n s] _ :no)", "[1 \"a\"]"},
		{"(try (throw {:type :my-error}) (catch my-error e :mine))", ":mine"},
		{"(step-parallel 1 (+ 1 1))", "[1 2]"},
	}
	for _, tt := range tests {
		in := New(Options{})
		v, err := evalSrc(t, in, tt.src)
		if err != nil {
			t.Errorf("%s: error %v", tt.src, err)
			continue
		}
		if got := Print(v); got != tt.want {
			t.Errorf("%s = %s, want %s", tt.src, got, tt.want)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	tests := []struct{ src, typ, msg string }{
		{"(/ 1 0)", ErrDivisionByZero, "division by zero"},
		{"(/ 1.0 0)", ErrDivisionByZero, "division by zero"},
		{"(mod 1 0)", ErrDivisionByZero, "division by zero"},
		{"(+ 9223372036854775807 1)", ErrArithmetic, "integer overflow"},
		{"(* 4611686018427387904 2)", ErrArithmetic, "integer overflow"},
		{"(- -9223372036854775808 1)", ErrArithmetic, "integer overflow"},
		{"(+ 1 \"a\")", ErrType, "+ expects numbers"},
		{"(nosuch 1)", ErrUnboundSymbol, "unbound symbol nosuch"},
		{"((fn [x] x))", ErrArity, "fn expects 1 argument, got 0"},
		{"(defn f [a b] a) (f 1)", ErrArity, "f expects 2 arguments, got 1"},
		{"(defn f2 [[a b]] a) (f2 [1 2 3])", ErrArity, "expects 2 elements, got 3"},
		{"(fn [x & [a]] x)", ErrSpecialForm, "variadic parameter must be a symbol"},
		{"(lambda [[a]] a)", ErrSpecialForm, "lambda parameters must be symbols"},
		{"(let [x:int \"s\"] x)", ErrType, "x is declared int"},
		{"((fn [x] :string x) 1)", ErrType, "must return string"},
		{"(defn g [x] :[:union :int :string] x) (g :k)", ErrType, "must return"},
		{"(defn h [n] {:pre [(pos? n)]} n) (h -1)", ErrPrecondition, "precondition"},
		{"(match 3 1 :one)", ErrMatch, "no pattern matched"},
		{"(:a 1 2 3)", ErrArity, "keyword :a called with 3 arguments"},
		{"(nil 2)", ErrType, "cannot call nil"},
		{"(let [x] x)", ErrSpecialForm, "even number"},
		{"(if)", ErrSpecialForm, "if takes"},
		{"(+ 1 (recur))", ErrSpecialForm, "tail position"},
		{"(throw \"custom\")", ErrUser, "custom"},
		{"(nth [1] 3)", ErrIndex, "outside"},
		{"(step \"s\" 1)", ErrHost, "no host is attached"},
		{"(call :ccos.echo 1)", ErrHost, "no host is attached"},
		{"(set [1])", ErrNotSupported, "sets are not part of RTFS"},
		{"(deftype P [x y])", ErrNotSupported, "record types"},
		{"(json/parse \"{\")", ErrJSON, "json/parse"},
		{"(json/stringify {1 2})", ErrJSON, "must be a keyword or a string"},
		{"if", ErrSpecialForm, "special form"},
		{"(factorial 1000000000000)", ErrArithmetic, "overflows a 64-bit integer"},
		{"(defn f [x] {:post [(> % 5)]} x) (f 1)", ErrPrecondition, "postcondition (> % 5) of f failed"},
		{"(factorial -1)", ErrValue, "negative"},
		{"(pow 2 64)", ErrArithmetic, "integer overflow in (pow 2 64)"},
		{"(int \"abc\")", ErrValue, "cannot parse"},
		{"(int [1])", ErrType, "int expects"},
		{"(< \"a\" 1)", ErrType, "compares numbers with numbers or strings with strings"},
		{"(re-find \"(\" \"x\")", ErrValue, "invalid regular expression"},
		{"(re-find 1 \"x\")", ErrType, "regular expression string"},
		{"(substring \"abc\" 2 9)", ErrIndex, "outside"},
		{"(defmacro if [c] c)", ErrSpecialForm, "cannot be redefined"},
		{"(defmacro step [c] c)", ErrSpecialForm, "cannot be redefined"},
		{"(unquote x)", ErrSpecialForm, "only meaningful inside a quasiquote"},
		{"`(1 ~@2)", ErrType, "splices a list or vector"},
		{"`~@[1]", ErrSpecialForm, "splices into a list or vector"},
		{"(case 3 1 :one 2 :two)", ErrMatch, "no clause matched"},
		{"(match 1 (:ok v) v)", ErrSpecialForm, "unsupported pattern (:ok v)"},
		{"(throw (LimitExceeded. \"fake\"))", ErrUser, "fake"},
		{"(module m (:exports [nope]) (def x 1))", ErrSpecialForm, "exports nope, which it does not define"},
		{"(module m (module n))", ErrSpecialForm, "cannot be nested"},
		{"(module m (:exports [a]) (def a 1) (def b 2)) m/b", ErrUnboundSymbol, "private to module m"},
		{"(module m (:exports [a]) (def a 1) (def b 2)) (import m :only [b])", ErrModule, "does not export b"},
		{"(import nowhere :as n)", ErrModule, "module nowhere is not defined"},
		{"(import nowhere :as)", ErrModule, "not defined"},
		{":", ErrUnboundSymbol, "unbound symbol :"},
	}
	for _, tt := range tests {
		in := New(Options{})
		_, err := evalSrc(t, in, tt.src)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: got %v, want an *Error", tt.src, err)
			continue
		}
		if e.Type != tt.typ || !strings.Contains(e.Message, tt.msg) {
			t.Errorf("%s: got %s: %s; want %s containing %q", tt.src, e.Type, e.Message, tt.typ, tt.msg)
		}
		if e.S.IsZero() {
			t.Errorf("%s: error has no position: %v", tt.src, e)
		}
	}
}

func TestErrorPositionAndStack(t *testing.T) {
	in := New(Options{})
	_, err := evalSrc(t, in, "(defn inner [x] (/ x 0))\n(defn outer [x] (inner x))\n(outer 1)")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v", err)
	}
	if got := e.Error(); got != "test.rtfs:1:17: DivisionByZero: division by zero in (/ 1 0)" {
		t.Errorf("Error() = %q", got)
	}
	want := "test.rtfs:1:17: DivisionByZero: division by zero in (/ 1 0)\n  at inner (test.rtfs:2:17)\n  at outer (test.rtfs:3:1)"
	if got := e.Detail(); got != want {
		t.Errorf("Detail() =\n%s\nwant\n%s", got, want)
	}
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name, src string
		lim       Limits
		msg       string
	}{
		{"unbounded recursion", "(defn f [n] (+ 1 (f n))) (f 1)", Limits{}, "recursion depth limit"},
		{"endless loop", "(loop [] (recur))", Limits{MaxSteps: 100_000}, "step budget"},
		{"endless loop, time", "(loop [] (recur))", Limits{MaxSteps: 1 << 60, Timeout: 50 * time.Millisecond}, "time limit"},
		{"huge range", "(range 1e12)", Limits{}, "collection size limit"},
		{"doubling with concat", "(loop [v [1]] (recur (concat v v)))", Limits{}, "collection size limit"},
		{"doubling strings", "(loop [s \"ab\"] (recur (str s s)))", Limits{}, "Limits.MaxCollection"},
		{"output flood", "(loop [] (println \"spam\") (recur))", Limits{MaxOutput: 1000}, "output larger"},
		{"catch cannot hide limits", "(loop [] (try (loop [] (recur)) (catch Exception e (recur))))", Limits{MaxSteps: 10_000}, "step budget"},
		{"shared-structure blowup printed", "(loop [v [1] i 0] (if (< i 60) (recur [v v] (inc i)) (str v)))", Limits{}, "string longer"},
		{"shared-structure blowup returned", "(loop [v [1] i 0] (if (< i 60) (recur [v v] (inc i)) v))", Limits{}, "result"},
		{"shared-structure blowup compared", "(loop [v [1] i 0] (if (< i 60) (recur [v v] (inc i)) (= v v)))", Limits{}, "nested elements"},
		{"shared-structure blowup as key", "(loop [v [1] i 0] (if (< i 60) (recur [v v] (inc i)) {v 1}))", Limits{}, "map key"},
		{"sleep past deadline", "(thread/sleep 60000)", Limits{Timeout: 20 * time.Millisecond}, "time limit"},
		{"huge numbers", "(numbers 0 1e12)", Limits{}, "collection size limit"},
		{"huge string-join", "(string-join (apply str (repeat 1000 \"x\")) (range 2000))", Limits{}, "Limits.MaxCollection"},
		{"regexp work is billed", "(re-seq \"(a|b)*c\" (apply str (repeat 200000 \"ab\")))", Limits{MaxSteps: 100_000}, "step budget"},
		{"regexp too long", "(re-find (apply str (repeat 5000 \"a\")) \"a\")", Limits{}, "regular expression of 5000 bytes"},
		{"endless macro expansion", "(defmacro m [] '(m)) (m)", Limits{MaxSteps: 100_000}, "step budget"},
		{"recursive macro nesting", "(defmacro m [] `(do (m))) (m)", Limits{MaxSteps: 1 << 40, Timeout: time.Minute}, "macro expansions nested deeper than 2000"},
		{"macro-built deep code", "(defmacro deep [n] (loop [i 0 f 1] (if (< i n) (recur (inc i) (list 'inc f)) f))) (deep 300000)", Limits{Timeout: time.Minute}, "nested deeper than 1000 levels"},
		{"macro-built huge code", "(defmacro wide [] (loop [i 0 f '(do)] (if (< i 30) (recur (inc i) (list 'do f f)) f))) (wide)", Limits{MaxCollection: 100_000, Timeout: time.Minute}, "more than 100000 forms"},
		{"exponential macro", "(defmacro dup [n & body] (if (> n 0) `(dup ~(dec n) ~@body ~@body) `(do ~@body))) (dup 40 1)", Limits{}, "Limits.Max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := New(Options{Limits: tt.lim})
			start := time.Now()
			_, err := evalSrc(t, in, tt.src)
			var e *Error
			if !errors.As(err, &e) || e.Type != ErrLimit || !strings.Contains(e.Message, tt.msg) {
				t.Fatalf("got %v, want LimitExceeded containing %q", err, tt.msg)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestHugeValueInErrorMessage(t *testing.T) {
	in := New(Options{})
	_, err := evalSrc(t, in, "(loop [v [1] i 0] (if (< i 60) (recur [v v] (inc i)) (+ v 1)))")
	var e *Error
	if !errors.As(err, &e) || e.Type != ErrType || len(e.Message) > 200 {
		t.Fatalf("got %v", err)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := New(Options{})
	forms, _ := ReadString("(loop [] (recur))", "t")
	_, err := in.EvalForms(ctx, forms)
	var e *Error
	if !errors.As(err, &e) || e.Type != ErrCancelled || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// recordingHost records steps and calls.
type recordingHost struct{ log []string }

func (h *recordingHost) Step(ctx context.Context, name string, opts *Map, body func(context.Context) (Value, error)) (Value, error) {
	h.log = append(h.log, "enter "+name+" "+Print(opts))
	v, err := body(ctx)
	h.log = append(h.log, "exit "+name)
	return v, err
}

func (h *recordingHost) Call(_ context.Context, id string, args []Value) (Value, error) {
	h.log = append(h.log, "call "+id+" "+Print(NewVector(args...)))
	if id == "fail" {
		return nil, errors.New("capability failed")
	}
	return String{V: "ok"}, nil
}

func TestHost(t *testing.T) {
	h := &recordingHost{}
	in := New(Options{Host: h})
	v, err := evalSrc(t, in, `(step "fetch" [:resources {:max_time_ms 5}] (call :http.get "u" 1))`)
	if err != nil || Print(v) != `"ok"` {
		t.Fatalf("got %v, %v", v, err)
	}
	want := []string{`enter fetch {:resources {:max_time_ms 5}}`, `call http.get ["u" 1]`, `exit fetch`}
	if strings.Join(h.log, "|") != strings.Join(want, "|") {
		t.Errorf("log %q, want %q", h.log, want)
	}
	v, err = evalSrc(t, in, `(try (call "fail") (catch HostError e (error-message e)))`)
	if err != nil || Print(v) != `"capability failed"` {
		t.Errorf("host error not catchable: %v %v", v, err)
	}
}

func TestOutputCaptured(t *testing.T) {
	in := New(Options{})
	v, err := evalSrc(t, in, `(println "a" 1 :k) (print "b") (log "c") 7`)
	if err != nil || Print(v) != "7" {
		t.Fatalf("%v %v", v, err)
	}
	if got := in.TakeOutput(); got != "a 1 :k\nb[log] c\n" {
		t.Errorf("output %q", got)
	}
	if in.Output() != "" {
		t.Errorf("TakeOutput did not clear")
	}
}

func TestDefinitionsPersist(t *testing.T) {
	in := New(Options{})
	if _, err := evalSrc(t, in, "(defn sq [x] (* x x)) (def k 3)"); err != nil {
		t.Fatal(err)
	}
	v, err := evalSrc(t, in, "(sq k)")
	if err != nil || Print(v) != "9" {
		t.Fatalf("%v %v", v, err)
	}
	if f, _ := evalSrc(t, in, "sq"); Print(f) != "#<fn sq>" {
		t.Errorf("function prints as %s", Print(f))
	}
	if a, _ := evalSrc(t, in, "(atom 1)"); Print(a) != "#<atom 1>" {
		t.Errorf("atom prints as %s", Print(a))
	}
}

func TestCustomNative(t *testing.T) {
	in := New(Options{})
	in.Define("twice", NewNative("twice", func(in *Interp, args []Value) (Value, error) {
		return in.Apply(args[0], []Value{args[1]})
	}))
	v, err := evalSrc(t, in, "(twice inc 1)")
	if err != nil || Print(v) != "2" {
		t.Fatalf("%v %v", v, err)
	}
}

func TestQuadraticBuildIsBudgeted(t *testing.T) {
	in := New(Options{})
	v, err := evalSrc(t, in, "(count (reduce conj [] (range 200000)))")
	if err != nil || Print(v) != "200000" {
		t.Fatalf("reduce conj: %v %v", v, err)
	}
	v, err = evalSrc(t, in, "(let [a (conj [1] 2) b (conj a 3) c (conj a 4)] [a b c (conj b 5)])")
	if err != nil || Print(v) != "[[1 2] [1 2 3] [1 2 4] [1 2 3 5]]" {
		t.Fatalf("conj sharing: %v %v", v, err)
	}
	// Repeated assoc on a growing map copies it each time; the copies are
	// billed to the step budget.
	in = New(Options{Limits: Limits{MaxSteps: 1_000_000}})
	start := time.Now()
	_, err = evalSrc(t, in, "(count (reduce (fn [m i] (assoc m i i)) {} (range 200000)))")
	var e *Error
	if !errors.As(err, &e) || e.Type != ErrLimit || !strings.Contains(e.Message, "step budget") {
		t.Fatalf("got %v, want the step budget exhausted", err)
	}
	t.Logf("stopped after %v: %v", time.Since(start), err)
}

// closeRecorder is a resource value that records its release.
type closeRecorder struct{ closed *int }

func (closeRecorder) Kind() Kind     { return KindOther }
func (closeRecorder) Span() Span     { return Span{} }
func (closeRecorder) String() string { return "#<resource>" }
func (c closeRecorder) Close() error { *c.closed++; return nil }

func TestWithResourceCloses(t *testing.T) {
	closed := 0
	in := New(Options{})
	in.Define("open", NewNative("open", func(*Interp, []Value) (Value, error) {
		return closeRecorder{closed: &closed}, nil
	}))
	if v, err := evalSrc(t, in, "(with-resource [r Res (open)] :used)"); err != nil || Print(v) != ":used" {
		t.Fatalf("%v %v", v, err)
	}
	if _, err := evalSrc(t, in, "(with-resource [r (open)] (/ 1 0))"); err == nil {
		t.Fatal("error in body was lost")
	}
	if closed != 2 {
		t.Errorf("closed %d times, want 2", closed)
	}
}

func TestTypeAnnotations(t *testing.T) {
	tests := []struct {
		src string
		ok  bool
	}{
		{"((fn [x:int] x) 1)", true},
		{"((fn [x:int] x) 1.5)", false},
		{"((fn [x:number] x) 1.5)", true},
		{"((fn [x:[:vector :int]] x) [1 2])", true},
		{"((fn [x:[:vector :int]] x) [1 :a])", false},
		{"((fn [x:[:optional :string]] x) nil)", true},
		{"(deftype Pt [:tuple :int :int]) ((fn [p:Pt] p) [1 2])", true},
		{"(deftype Pt [:tuple :int :int]) ((fn [p:Pt] p) [1])", false},
		{"((fn [x:[:and :int [:> 0]]] x) 5)", true},
		{"(def n:string 1)", false},
		{"((fn [& xs:[:vector :int]] xs) 1 2)", true},
		{"((fn [& xs:[:vector :int]] xs) 1 :a)", false},
		{"((fn [x] :[:union :int :string] x) \"s\")", true},
		{"(let [profile:minimal 1] profile:minimal)", true},
		// Spaced and keyword annotations (spec 03 §8.4), capitalised names.
		{"((fn [a : int b : Integer] : integer (+ a b)) 1 2)", true},
		{"((fn [a : int] a) \"s\")", false},
		{"((fn [a : String] a) 1)", false},
		{"((fn [a :int b :int] :int (+ a b)) 1 2)", true},
		{"((fn [a :int] a) 1.5)", false},
		{"((fn [x] : string x) 1)", false},
		{"((fn [x : CustomType] x) 1)", true},
		{"(let [x : int 5 y : string \"s\"] [x y])", true},
		{"(let [x : int \"5\"] x)", false},
		{"((fn [x : :string?] x) nil)", true},
		// Records, written [:k T] or {:k T}; other keys are allowed.
		{"(let [r : [:record [:id :int] [:name :string]] {:id 1 :name \"a\" :x 2}] r)", true},
		{"(let [r : [:record [:id :int]] {:name \"a\"}] r)", false},
		{"(let [r : [:map [:id {:optional true} :int]] {}] r)", true},
		{"(let [r : [:map {:id :int}] {:id \"1\"}] r)", false},
		{"(let [d : [:dict :string :int] {\"a\" 1}] d)", true},
		{"(let [d : [:map-of :string :int] {\"a\" :x}] d)", false},
	}
	for _, tt := range tests {
		_, err := evalSrc(t, New(Options{}), tt.src)
		if (err == nil) != tt.ok {
			t.Errorf("%s: error %v, want ok=%v", tt.src, err, tt.ok)
		}
		var e *Error
		if err != nil && (!errors.As(err, &e) || e.Type != ErrType) {
			t.Errorf("%s: got %v, want a TypeError", tt.src, err)
		}
	}
}

// A colon in a defined name is an annotation only when a type follows it:
// the config profiles are functions named profile:minimal and so on.
func TestColonNames(t *testing.T) {
	in := New(Options{})
	v, err := in.EvalString(context.Background(), `(do (defn profile:minimal [id] {:agent-id id})
  (def n:int 3)
  (let [p:Point [1 2] q:my-thing 4] [(profile:minimal "a") n p q:my-thing]))`, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := Print(v); got != `[{:agent-id "a"} 3 [1 2] 4]` {
		t.Errorf("got %s", got)
	}
	if _, err := in.EvalString(context.Background(), `(def m:int "x")`, "t"); err == nil {
		t.Error("annotation int on a string accepted")
	}
}

// A step's :compensate expression runs when the body fails, inside the
// step, and the step still fails; it does not run on success.
func TestStepCompensate(t *testing.T) {
	in := New(Options{Host: passHost{}})
	src := `(do (def log (atom []))
  (def ok (step "a" [:compensate (swap! log conj :undo-a)] (swap! log conj :did-a) 1))
  (def failed (try (step "b" [:compensate (swap! log conj :undo-b)] (swap! log conj :did-b) (/ 1 0))
                   (catch Exception e :caught)))
  [ok failed @log])`
	v, err := in.EvalString(context.Background(), src, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := Print(v); got != "[1 :caught [:did-a :did-b :undo-b]]" {
		t.Errorf("got %s", got)
	}
	_, err = in.EvalString(context.Background(), `(step "c" [:compensate (/ 2 0)] (/ 1 0))`, "t")
	if err == nil || !strings.Contains(err.Error(), "its compensation failed too") {
		t.Errorf("failing compensation: %v", err)
	}
}

// passHost runs every step and refuses calls.
type passHost struct{}

func (passHost) Step(ctx context.Context, _ string, _ *Map, body func(context.Context) (Value, error)) (Value, error) {
	return body(ctx)
}

func (passHost) Call(context.Context, string, []Value) (Value, error) {
	return nil, errors.New("no calls")
}

// retryHost runs every step, refuses calls and records the retries asked.
type retryHost struct {
	passHost
	retries []string
	refuse  bool
}

func (h *retryHost) RetryStep(_ context.Context, name string, attempt int, cause error) error {
	h.retries = append(h.retries, fmt.Sprintf("%s#%d", name, attempt))
	if h.refuse {
		return errors.New("no more retries")
	}
	return nil
}

// A step with :retry N runs its body again after a catchable failure, at
// most N more times, telling the host before each attempt; the
// compensation runs once, after the last attempt failed.
func TestStepRetry(t *testing.T) {
	tests := []struct {
		name, src, want, err string
		retries              string
		host                 Host
	}{
		{"succeeds on the third attempt", `(do (def n (atom 0)) (def log (atom []))
  [(step "s" [:retry 2 :compensate (swap! log conj :undo)] (swap! n inc) (if (< @n 3) (/ 1 0) @n)) @log])`,
			"[3 []]", "", "s#1 s#2", &retryHost{}},
		{"fails every attempt", `(do (def n (atom 0)) (def log (atom []))
  (try (step "s" [:retry 1 :compensate (swap! log conj :undo)] (swap! n inc) (/ 1 0)) (catch Exception e [@n @log])))`,
			"[2 [:undo]]", "", "s#1", &retryHost{}},
		{"the host refuses", `(step "s" [:retry 3] (/ 1 0))`, "", "no more retries", "s#1", &retryHost{refuse: true}},
		{"limits are not retried", `(step "s" [:retry 3] (loop [] (recur)))`, "", "LimitExceeded", "", &retryHost{}},
		{"no retrier, no retry", `(do (def n (atom 0)) (try (step "s" [:retry 3] (swap! n inc) (/ 1 0)) (catch Exception e @n)))`, "1", "", "", passHost{}},
		{"bad :retry", `(step "s" [:retry -1] 1)`, "", ":retry must be an integer from 0 to 10", "", &retryHost{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := New(Options{Host: tc.host, Limits: Limits{MaxSteps: 10000}})
			v, err := in.EvalString(context.Background(), tc.src, "t")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
			} else if err != nil || Print(v) != tc.want {
				t.Fatalf("got %v, %v; want %s", v, err, tc.want)
			}
			if h, ok := tc.host.(*retryHost); ok && strings.Join(h.retries, " ") != tc.retries {
				t.Errorf("retries %v, want %s", h.retries, tc.retries)
			}
		})
	}
}
