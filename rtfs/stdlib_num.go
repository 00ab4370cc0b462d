package rtfs

import (
	"math"
	"strings"
)

// Numeric semantics: an operation on integers gives an integer and fails
// on overflow (ArithmeticError) instead of wrapping; any float operand makes
// the result a float. (/ a b) of integers is an integer when the division is
// exact and a float otherwise. Division, mod and rem by zero fail with
// DivisionByZero for integers and floats alike.

// smallInts holds boxed small integers so that arithmetic on them does not
// allocate.
var smallInts = func() [1280]Value {
	var t [1280]Value
	for i := range t {
		t[i] = Int{V: int64(i) - 256}
	}
	return t
}()

// mkInt returns n as a Value, sharing the boxes of small integers.
func mkInt(n int64) Value {
	if n >= -256 && n < 1024 {
		return smallInts[n+256]
	}
	return Int{V: n}
}

var trueV, falseV Value = Bool{V: true}, Bool{V: false}

// mkBool returns b as a Value without allocating.
func mkBool(b bool) Value {
	if b {
		return trueV
	}
	return falseV
}

func numArg(fn string, v Value) (Value, error) {
	switch v.(type) {
	case Int, Float:
		return v, nil
	}
	return nil, newError(ErrType, "%s expects numbers, got %s", fn, describe(v))
}

func toFloat(v Value) float64 {
	switch x := v.(type) {
	case Int:
		return float64(x.V)
	case Float:
		return x.V
	}
	return math.NaN()
}

func overflow(fn string, a, b int64) error {
	return newError(ErrArithmetic, "integer overflow in (%s %d %d); use floats (e.g. %d.0) for larger magnitudes", fn, a, b, a)
}

func addInt(a, b int64) (int64, bool) {
	c := a + b
	return c, (c > a) == (b > 0) || b == 0
}

func subInt(a, b int64) (int64, bool) {
	c := a - b
	return c, (c < a) == (b > 0) || b == 0
}

func mulInt(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	c := a * b
	if c/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		return 0, false
	}
	return c, true
}

// arith2 applies one binary operator with the numeric semantics above.
func arith2(fn string, a, b Value) (Value, error) {
	x, xi := a.(Int)
	y, yi := b.(Int)
	if xi && yi {
		var r int64
		ok := true
		switch fn {
		case "+":
			r, ok = addInt(x.V, y.V)
		case "-":
			r, ok = subInt(x.V, y.V)
		case "*":
			r, ok = mulInt(x.V, y.V)
		case "/":
			if y.V == 0 {
				return nil, newError(ErrDivisionByZero, "division by zero in (/ %d 0)", x.V)
			}
			if x.V == math.MinInt64 && y.V == -1 {
				return nil, overflow(fn, x.V, y.V)
			}
			if x.V%y.V == 0 {
				return Int{V: x.V / y.V}, nil
			}
			return Float{V: float64(x.V) / float64(y.V)}, nil
		}
		if !ok {
			return nil, overflow(fn, x.V, y.V)
		}
		return mkInt(r), nil
	}
	if _, err := numArg(fn, a); err != nil {
		return nil, err
	}
	if _, err := numArg(fn, b); err != nil {
		return nil, err
	}
	f, g := toFloat(a), toFloat(b)
	switch fn {
	case "+":
		return Float{V: f + g}, nil
	case "-":
		return Float{V: f - g}, nil
	case "*":
		return Float{V: f * g}, nil
	}
	if g == 0 {
		return nil, newError(ErrDivisionByZero, "division by zero in (/ %s %s)", Print(a), Print(b))
	}
	return Float{V: f / g}, nil
}

func fold(fn string, identity Value) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		switch len(args) {
		case 0:
			if identity == nil {
				return nil, newError(ErrArity, "%s expects at least 1 argument, got 0", fn)
			}
			return identity, nil
		case 1:
			if _, err := numArg(fn, args[0]); err != nil {
				return nil, err
			}
			switch fn {
			case "-":
				return arith2(fn, Int{V: 0}, args[0])
			case "/":
				return arith2(fn, Int{V: 1}, args[0])
			}
			return args[0], nil
		}
		acc := args[0]
		for _, a := range args[1:] {
			var err error
			if acc, err = arith2(fn, acc, a); err != nil {
				return nil, err
			}
		}
		return acc, nil
	}
}

func modRem(fn string) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 2, 2); err != nil {
			return nil, err
		}
		a, b := args[0], args[1]
		x, xi := a.(Int)
		y, yi := b.(Int)
		if xi && yi {
			if y.V == 0 {
				return nil, newError(ErrDivisionByZero, "division by zero in (%s %d 0)", fn, x.V)
			}
			if y.V == -1 {
				return Int{V: 0}, nil
			}
			r := x.V % y.V
			if fn == "mod" && r != 0 && (r < 0) != (y.V < 0) {
				r += y.V
			}
			return Int{V: r}, nil
		}
		for _, v := range args {
			if _, err := numArg(fn, v); err != nil {
				return nil, err
			}
		}
		f, g := toFloat(a), toFloat(b)
		if g == 0 {
			return nil, newError(ErrDivisionByZero, "division by zero in (%s %s %s)", fn, Print(a), Print(b))
		}
		r := math.Mod(f, g)
		if fn == "mod" && r != 0 && (r < 0) != (g < 0) {
			r += g
		}
		return Float{V: r}, nil
	}
}

func incDec(fn string, d int64) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 1, 1); err != nil {
			return nil, err
		}
		op := "+"
		if d < 0 {
			op = "-"
		}
		return arith2(op, args[0], Int{V: 1})
	}
}

// compareNum compares two numbers (ints and floats mix).
func compareNum(fn string, a, b Value) (int, error) {
	if x, ok := a.(Int); ok {
		if y, ok := b.(Int); ok {
			switch {
			case x.V < y.V:
				return -1, nil
			case x.V > y.V:
				return 1, nil
			}
			return 0, nil
		}
	}
	if _, err := numArg(fn, a); err != nil {
		return 0, err
	}
	if _, err := numArg(fn, b); err != nil {
		return 0, err
	}
	f, g := toFloat(a), toFloat(b)
	switch {
	case f < g:
		return -1, nil
	case f > g:
		return 1, nil
	}
	return 0, nil
}

func numCompare(fn string, ok func(int) bool) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 1, -1); err != nil {
			return nil, err
		}
		if _, isStr := args[0].(String); isStr {
			return compareStrings(fn, args, ok)
		}
		res := true
		for i := 0; i+1 < len(args); i++ {
			c, err := compareNum(fn, args[i], args[i+1])
			if err != nil {
				return nil, err
			}
			if !ok(c) {
				res = false
			}
		}
		if len(args) == 1 {
			if _, err := numArg(fn, args[0]); err != nil {
				return nil, err
			}
		}
		return mkBool(res), nil
	}
}

// compareStrings orders strings by their bytes (spec 10 §4: comparisons
// take any comparable values), with the same chaining as for numbers.
func compareStrings(fn string, args []Value, ok func(int) bool) (Value, error) {
	res := true
	for i := 0; i < len(args); i++ {
		s, isStr := args[i].(String)
		if !isStr {
			return nil, newError(ErrType, "%s compares numbers with numbers or strings with strings, got %s and %s", fn, describe(args[0]), describe(args[i]))
		}
		if i > 0 && !ok(strings.Compare(args[i-1].(String).V, s.V)) {
			res = false
		}
	}
	return mkBool(res), nil
}

func minMax(fn string, want int) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 1, -1); err != nil {
			return nil, err
		}
		best := args[0]
		if _, err := numArg(fn, best); err != nil {
			return nil, err
		}
		for _, a := range args[1:] {
			c, err := compareNum(fn, a, best)
			if err != nil {
				return nil, err
			}
			if c == want {
				best = a
			}
		}
		return best, nil
	}
}

func fnAbs(_ *Interp, args []Value) (Value, error) {
	if err := arity("abs", args, 1, 1); err != nil {
		return nil, err
	}
	switch x := args[0].(type) {
	case Int:
		if x.V == math.MinInt64 {
			return nil, newError(ErrArithmetic, "integer overflow in (abs %d)", x.V)
		}
		if x.V < 0 {
			return Int{V: -x.V}, nil
		}
		return Int{V: x.V}, nil
	case Float:
		return Float{V: math.Abs(x.V)}, nil
	}
	return nil, newError(ErrType, "abs expects a number, got %s", describe(args[0]))
}

func floatFn(fn string, f func(float64) float64) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 1, 1); err != nil {
			return nil, err
		}
		if _, err := numArg(fn, args[0]); err != nil {
			return nil, err
		}
		return Float{V: f(toFloat(args[0]))}, nil
	}
}

// roundFn rounds floats to integers; integers pass through.
func roundFn(fn string, f func(float64) float64) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 1, 1); err != nil {
			return nil, err
		}
		switch x := args[0].(type) {
		case Int:
			return x, nil
		case Float:
			r := f(x.V)
			if math.IsNaN(r) || r >= 9.2e18 || r <= -9.2e18 {
				return nil, newError(ErrArithmetic, "%s: %s does not fit in an integer", fn, Print(x))
			}
			return Int{V: int64(r)}, nil
		}
		return nil, newError(ErrType, "%s expects a number, got %s", fn, describe(args[0]))
	}
}

// fnPow raises a base to a power. Two integers with a non-negative
// exponent give an integer (spec 13 §5.5: all-Int operands give an Int),
// and overflow is an ArithmeticError; anything else gives a float.
func fnPow(_ *Interp, args []Value) (Value, error) {
	if err := arity("pow", args, 2, 2); err != nil {
		return nil, err
	}
	for _, a := range args {
		if _, err := numArg("pow", a); err != nil {
			return nil, err
		}
	}
	b, bok := args[0].(Int)
	x, xok := args[1].(Int)
	if !bok || !xok || x.V < 0 {
		return Float{V: math.Pow(toFloat(args[0]), toFloat(args[1]))}, nil
	}
	r, base, e := int64(1), b.V, x.V
	for e > 0 {
		var ok bool
		if e&1 == 1 {
			if r, ok = mulInt(r, base); !ok {
				return nil, newError(ErrArithmetic, "integer overflow in (pow %d %d); use a float base (pow %d.0 %d) for larger magnitudes", b.V, x.V, b.V, x.V)
			}
		}
		if e >>= 1; e > 0 {
			if base, ok = mulInt(base, base); !ok {
				return nil, newError(ErrArithmetic, "integer overflow in (pow %d %d); use a float base (pow %d.0 %d) for larger magnitudes", b.V, x.V, b.V, x.V)
			}
		}
	}
	return mkInt(r), nil
}

// floatFn2 is a two-argument float function, such as Math/pow (which, as
// in Java, always gives a float).
func floatFn2(fn string, f func(float64, float64) float64) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 2, 2); err != nil {
			return nil, err
		}
		for _, a := range args {
			if _, err := numArg(fn, a); err != nil {
				return nil, err
			}
		}
		return Float{V: f(toFloat(args[0]), toFloat(args[1]))}, nil
	}
}

// maxFactorial is the largest n whose factorial fits in 64 bits.
const maxFactorial = 20

// fnFactorial is (factorial n) for 0 <= n <= 20; a larger n overflows at
// once, without computing anything.
func fnFactorial(_ *Interp, args []Value) (Value, error) {
	if err := arity("factorial", args, 1, 1); err != nil {
		return nil, err
	}
	n, ok := args[0].(Int)
	switch {
	case !ok:
		return nil, newError(ErrType, "factorial expects an integer, got %s", describe(args[0]))
	case n.V < 0:
		return nil, newError(ErrValue, "factorial of a negative number (%d) is undefined", n.V)
	case n.V > maxFactorial:
		return nil, newError(ErrArithmetic, "factorial of %d overflows a 64-bit integer (the largest is %d! = 2432902008176640000)", n.V, maxFactorial)
	}
	r := int64(1)
	for i := int64(2); i <= n.V; i++ {
		r *= i
	}
	return mkInt(r), nil
}

func numPred(fn string, p func(Value) (bool, error)) NativeFunc {
	return func(_ *Interp, args []Value) (Value, error) {
		if err := arity(fn, args, 1, 1); err != nil {
			return nil, err
		}
		ok, err := p(args[0])
		if err != nil {
			return nil, err
		}
		return mkBool(ok), nil
	}
}

func intPred(fn string, p func(int64) bool) NativeFunc {
	return numPred(fn, func(v Value) (bool, error) {
		x, ok := v.(Int)
		if !ok {
			return false, newError(ErrType, "%s expects an integer, got %s", fn, describe(v))
		}
		return p(x.V), nil
	})
}

func signPred(fn string, p func(float64) bool) NativeFunc {
	return numPred(fn, func(v Value) (bool, error) {
		if _, err := numArg(fn, v); err != nil {
			return false, err
		}
		return p(toFloat(v)), nil
	})
}
