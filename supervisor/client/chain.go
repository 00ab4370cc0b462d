package client

import (
	"context"
	"net/url"
	"strconv"

	"github.com/ccos-project/ccos/supervisor"
)

// Chain returns an agent's causal chain: its size, Merkle root and latest
// checkpoint.
func (c *Client) Chain(ctx context.Context, agent string) (*supervisor.ChainInfo, error) {
	var ci supervisor.ChainInfo
	return &ci, c.do(ctx, "GET", "/v1/agents/"+url.PathEscape(agent)+"/chain", nil, &ci)
}

// VerifyChain has the supervisor verify an agent's chain from its stored
// bytes; a damaged chain is a result with OK false, not an error.
func (c *Client) VerifyChain(ctx context.Context, agent string) (*supervisor.ChainVerification, error) {
	var v supervisor.ChainVerification
	return &v, c.do(ctx, "POST", "/v1/agents/"+url.PathEscape(agent)+"/chain/verify", nil, &v)
}

// ProveEvent returns the inclusion proof of an agent's chain event against
// its latest checkpoint, checked by the supervisor.
func (c *Client) ProveEvent(ctx context.Context, agent string, index uint64) (*supervisor.ChainProof, error) {
	var p supervisor.ChainProof
	return &p, c.do(ctx, "GET", "/v1/agents/"+url.PathEscape(agent)+"/chain/proof?index="+strconv.FormatUint(index, 10), nil, &p)
}
