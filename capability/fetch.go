package capability

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/ccos-project/ccos/rtfs"
)

// FetchRequest is one HTTP request of ccos.network.http-fetch. (Plain
// types: this package is linked into the guests, which have no network
// code.)
type FetchRequest struct {
	Method, URL string
	Header      map[string][]string
	Body        []byte
}

// FetchResponse is the origin's answer; Body is at most MaxFetchBody+1
// bytes (one more says it was cut).
type FetchResponse struct {
	Status int
	Header map[string][]string
	Body   []byte
}

// FetchFunc sends one HTTP request out of ccos. The host sets it to the
// egress proxy's round trip, which applies the agent's and the step's ACLs,
// address checks, DLP and limits; nothing else reaches the network. The
// step is ScopeFrom(ctx).
type FetchFunc func(ctx context.Context, req FetchRequest) (*FetchResponse, error)

// MaxFetchBody bounds the response body ccos.network.http-fetch returns to
// the plan.
const MaxFetchBody = 1 << 20

// ErrFetchTooLarge is returned for a response body over MaxFetchBody.
var ErrFetchTooLarge = errors.New("ccos.network.http-fetch: the response body is larger than 1 MiB")

type fetcher struct{ fetch FetchFunc }

// call implements ccos.network.http-fetch:
//
//	(call :ccos.network.http-fetch "https://api.example.com/x")
//	(call :ccos.network.http-fetch "https://api.example.com/x"
//	      {:method "POST" :headers {"content-type" "application/json"} :body "{}"})
//
// and returns {:status 200 :headers {"content-type" "..."} :body "..."}.
func (f fetcher) call(ctx context.Context, args []rtfs.Value) (rtfs.Value, error) {
	if f.fetch == nil {
		return nil, ErrNoEgressProxy
	}
	if len(args) < 1 || len(args) > 2 {
		return nil, fmt.Errorf("%w: ccos.network.http-fetch takes a URL and an optional options map", ErrArgs)
	}
	raw, ok := args[0].(rtfs.String)
	if !ok {
		return nil, fmt.Errorf("%w: ccos.network.http-fetch: the URL must be a string", ErrArgs)
	}
	u, err := url.Parse(raw.V)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: ccos.network.http-fetch: %q is not an http or https URL", ErrArgs, raw.V)
	}
	method, body := "GET", ""
	headers := map[string][]string{}
	if len(args) == 2 {
		opts, ok := args[1].(*rtfs.Map)
		if !ok {
			return nil, fmt.Errorf("%w: ccos.network.http-fetch: the options must be a map", ErrArgs)
		}
		for i := 0; i < opts.Len(); i++ {
			k, v := opts.Entry(i)
			kw, _ := k.(rtfs.Keyword)
			switch kw.Name {
			case "method":
				s, ok := stringish(v)
				if !ok {
					return nil, fmt.Errorf("%w: ccos.network.http-fetch: :method must be a string or keyword", ErrArgs)
				}
				method = strings.ToUpper(s)
			case "body":
				s, ok := v.(rtfs.String)
				if !ok {
					return nil, fmt.Errorf("%w: ccos.network.http-fetch: :body must be a string", ErrArgs)
				}
				body = s.V
			case "headers":
				hm, ok := v.(*rtfs.Map)
				if !ok {
					return nil, fmt.Errorf("%w: ccos.network.http-fetch: :headers must be a map", ErrArgs)
				}
				for j := 0; j < hm.Len(); j++ {
					hk, hv := hm.Entry(j)
					name, ok1 := stringish(hk)
					val, ok2 := hv.(rtfs.String)
					if !ok1 || !ok2 {
						return nil, fmt.Errorf("%w: ccos.network.http-fetch: :headers maps names to strings", ErrArgs)
					}
					headers[name] = append(headers[name], val.V)
				}
			default:
				return nil, fmt.Errorf("%w: ccos.network.http-fetch: unknown option %s (known: :method :headers :body)", ErrArgs, rtfs.Print(k))
			}
		}
	}
	resp, err := f.fetch(ctx, FetchRequest{Method: method, URL: u.String(), Header: headers, Body: []byte(body)})
	if err != nil {
		return nil, fmt.Errorf("ccos.network.http-fetch %s %s: %w", method, u.Redacted(), err)
	}
	if len(resp.Body) > MaxFetchBody {
		return nil, ErrFetchTooLarge
	}
	data := resp.Body
	names := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	hv := make([]rtfs.Value, 0, 2*len(names))
	for _, k := range names {
		hv = append(hv, rtfs.String{V: strings.ToLower(k)}, rtfs.String{V: strings.Join(resp.Header[k], ", ")})
	}
	return rtfs.MapOf(rtfs.Keyword{Name: "status"}, rtfs.Int{V: int64(resp.Status)},
		rtfs.Keyword{Name: "headers"}, rtfs.MapOf(hv...),
		rtfs.Keyword{Name: "body"}, rtfs.String{V: string(data)}), nil
}

func stringish(v rtfs.Value) (string, bool) {
	switch v := v.(type) {
	case rtfs.String:
		return v.V, true
	case rtfs.Keyword:
		return v.Name, true
	}
	return "", false
}
