package contract

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoOperation is wrapped when the API defines no operation for a method
// and path.
var ErrNoOperation = errors.New("contract: no such operation")

// Operation is one API operation matched from a request.
type Operation struct {
	// ID is the operationId, e.g. "putGuestDriveByID".
	ID string
	// Template is the path template, e.g. "/drives/{drive_id}".
	Template string
	// PathParams maps template parameters to their values in the request.
	PathParams map[string]string
	// Body names the definition of the body parameter; empty when the
	// operation takes no body.
	Body string
	// BodyRequired reports whether the body parameter is required.
	BodyRequired bool
}

// Match finds the operation for an HTTP method and request path.
func (a *API) Match(method, path string) (*Operation, error) {
	method = strings.ToLower(method)
	for tmpl, ops := range a.paths {
		params, ok := matchPath(tmpl, path)
		if !ok {
			continue
		}
		op := ops[method]
		if op == nil {
			return nil, fmt.Errorf("%w: %s %s (path %s has no %s)", ErrNoOperation, strings.ToUpper(method), path, tmpl, strings.ToUpper(method))
		}
		out := &Operation{ID: op.OperationID, Template: tmpl, PathParams: params}
		for _, p := range op.Parameters {
			if p.In == "body" && p.Schema != nil {
				out.Body = strings.TrimPrefix(p.Schema.Ref, "#/definitions/")
				out.BodyRequired = p.Required
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %s %s", ErrNoOperation, strings.ToUpper(method), path)
}

// ValidateRequest checks that method and path name an operation of the API
// and that body (empty for none) matches the operation's body definition.
func (a *API) ValidateRequest(method, path string, body []byte) (*Operation, error) {
	op, err := a.Match(method, path)
	if err != nil {
		return nil, err
	}
	switch {
	case op.Body == "" && len(body) > 0:
		return op, fmt.Errorf("%w: %s %s takes no body", ErrInvalid, method, path)
	case op.Body == "" || (len(body) == 0 && !op.BodyRequired):
		return op, nil
	case len(body) == 0:
		return op, fmt.Errorf("%w: %s %s requires a %s body", ErrInvalid, method, path, op.Body)
	}
	return op, a.Validate(op.Body, body)
}

func matchPath(tmpl, path string) (map[string]string, bool) {
	ts := strings.Split(strings.Trim(tmpl, "/"), "/")
	ps := strings.Split(strings.Trim(path, "/"), "/")
	if len(ts) != len(ps) {
		return nil, false
	}
	params := map[string]string{}
	for i, t := range ts {
		if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
			if ps[i] == "" {
				return nil, false
			}
			params[t[1:len(t)-1]] = ps[i]
			continue
		}
		if t != ps[i] {
			return nil, false
		}
	}
	return params, true
}
