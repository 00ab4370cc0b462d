package rtfs_test

import (
	"context"
	"fmt"

	"github.com/ccos-project/ccos/rtfs"
)

func ExampleInterp_EvalString() {
	in := rtfs.New(rtfs.Options{Limits: rtfs.Limits{MaxSteps: 100_000}})
	v, err := in.EvalString(context.Background(), `
(defn greet [{:keys [name]}]
  (println "greeting" name)
  (str "Hello, " name))
(greet {:name "Ada"})`, "example.rtfs")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(in.TakeOutput())
	fmt.Println(rtfs.Print(v))
	// Output:
	// greeting Ada
	// "Hello, Ada"
}

func ExampleError() {
	in := rtfs.New(rtfs.Options{})
	_, err := in.EvalString(context.Background(), "(defn half [x] (/ x 0))\n(half 4)", "plan.rtfs")
	if e, ok := err.(*rtfs.Error); ok {
		fmt.Println(e.Detail())
	}
	// Output:
	// plan.rtfs:1:16: DivisionByZero: division by zero in (/ 4 0)
	//   at half (plan.rtfs:2:1)
}
