package engine

import (
	"encoding/json"
	"testing"

	"github.com/ccos-project/ccos/rtfs"
)

func TestPayloadJSON(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`{:a 1 :b "x" :c [1 2.5 nil true] "k" :kw}`, `{"a":1,"b":"x","c":[1,2.5,null,true],"k":":kw"}`},
		{`{[1] 2}`, `{"[1]":2}`},
		{`"\u001b]0;title\u0007"`, `"\u001b]0;title\u0007"`},
		{`(1 sym)`, `[1,"sym"]`},
	} {
		src, err := rtfs.Read([]byte(tc.src), "t", rtfs.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := payloadJSON(src.Forms[0])
		if !json.Valid(got) || string(got) != tc.want {
			t.Errorf("%s: %s, want %s", tc.src, got, tc.want)
		}
	}
}
