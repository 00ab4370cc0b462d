package egress

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ccos-project/ccos/domain"
)

// SplitHostPort parses the authority of a request ("host", "host:port",
// "[v6]:port") into a normalized host and a port; defaultPort is used when
// the port is absent. User information, empty hosts and ports outside
// 1..65535 are refused.
func SplitHostPort(authority string, defaultPort int) (string, int, error) {
	if strings.ContainsAny(authority, "@/?#\\ \t\r\n") {
		return "", 0, fmt.Errorf("%w: %q is not an authority", domain.ErrInvalidHost, authority)
	}
	host, portStr := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("%w: %q lacks ']'", domain.ErrInvalidHost, authority)
		}
		host, rest := authority[:end+1], authority[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return "", 0, fmt.Errorf("%w: %q has text after ']'", domain.ErrInvalidHost, authority)
			}
			portStr = rest[1:]
			if portStr == "" {
				return "", 0, fmt.Errorf("%w: %q has an empty port", domain.ErrInvalidHost, authority)
			}
		}
		return finishHostPort(host, portStr, defaultPort)
	}
	if i := strings.LastIndexByte(authority, ':'); i >= 0 {
		if strings.IndexByte(authority[:i], ':') >= 0 {
			return "", 0, fmt.Errorf("%w: %q: an IPv6 literal needs brackets", domain.ErrInvalidHost, authority)
		}
		host, portStr = authority[:i], authority[i+1:]
		if portStr == "" {
			return "", 0, fmt.Errorf("%w: %q has an empty port", domain.ErrInvalidHost, authority)
		}
	}
	return finishHostPort(host, portStr, defaultPort)
}

func finishHostPort(host, portStr string, defaultPort int) (string, int, error) {
	port := defaultPort
	if portStr != "" {
		p, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || p == 0 || portStr[0] == '+' {
			return "", 0, fmt.Errorf("%w: port %q must be 1 to 65535", domain.ErrInvalidHost, portStr)
		}
		port = int(p)
	}
	if port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%w: port %d must be 1 to 65535", domain.ErrInvalidHost, port)
	}
	h, err := domain.Normalize(host)
	if err != nil {
		return "", 0, err
	}
	return h, port, nil
}
