package archive

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// GraphRef is the ref that names the current intent graph.
const GraphRef = "intent-graph"

// ErrGraph is an intent graph that is not well formed: an intent without an
// id, an id twice, or an edge naming an intent the graph does not hold.
var ErrGraph = errors.New("archive: invalid intent graph")

// Graph is the intent graph: intents by id and the edges between them.
type Graph struct {
	Intents map[string]*Intent
	Edges   []Edge
}

// NewGraph returns an empty graph.
func NewGraph() *Graph { return &Graph{Intents: map[string]*Intent{}} }

// AddIntent adds or replaces the intent with i's id.
func (g *Graph) AddIntent(i *Intent) error {
	if i.ID == "" {
		return fmt.Errorf("%w: intent without id", ErrGraph)
	}
	g.Intents[i.ID] = i
	return nil
}

// AddEdge adds an edge between two intents of the graph.
func (g *Graph) AddEdge(e Edge) error {
	if err := g.checkEdge(len(g.Edges), e); err != nil {
		return err
	}
	g.Edges = append(g.Edges, e)
	return nil
}

func (g *Graph) checkEdge(n int, e Edge) error {
	for _, end := range []string{e.From, e.To} {
		if _, ok := g.Intents[end]; !ok {
			return fmt.Errorf("%w: edge %d (%s -> %s): no intent %q", ErrGraph, n, e.From, e.To, end)
		}
	}
	if e.Type == "" {
		return fmt.Errorf("%w: edge %d (%s -> %s) has no edge_type", ErrGraph, n, e.From, e.To)
	}
	return nil
}

// Validate checks that every intent has the id it is filed under and that
// every edge joins two intents of the graph.
func (g *Graph) Validate() error {
	for id, i := range g.Intents {
		if i == nil || i.ID != id || id == "" {
			return fmt.Errorf("%w: intent filed as %q has another id", ErrGraph, id)
		}
	}
	for n, e := range g.Edges {
		if err := g.checkEdge(n, e); err != nil {
			return err
		}
	}
	return nil
}

// sortEdges orders edges by from, to, type so that equal graphs store
// equal graph objects.
func (g *Graph) sortEdges() {
	slices.SortStableFunc(g.Edges, func(x, y Edge) int {
		return cmp.Or(cmp.Compare(x.From, y.From), cmp.Compare(x.To, y.To), cmp.Compare(x.Type, y.Type))
	})
}

// graphRecord is the stored form of a graph: each intent is its own object
// (named by hash), the edges are inline.
type graphRecord struct {
	Kind    string            `json:"kind"`
	Intents map[string]string `json:"intents"`
	Edges   []Edge            `json:"edges"`
}

// intentRecord wraps an intent so that its own members (even unknown ones
// named "kind") never collide with the archive's "kind".
type intentRecord struct {
	Kind   string  `json:"kind"`
	Intent *Intent `json:"intent"`
}

// PutIntent stores one intent and returns its hash.
func (a *Archive) PutIntent(i *Intent) (string, error) {
	if i.ID == "" {
		return "", fmt.Errorf("%w: intent without id", ErrInvalid)
	}
	return a.PutValue(intentRecord{Kind: KindIntent, Intent: i})
}

// GetIntent returns the intent stored as h.
func (a *Archive) GetIntent(h string) (*Intent, error) {
	var r intentRecord
	if err := a.getKind(h, KindIntent, &r); err != nil {
		return nil, err
	}
	if r.Intent == nil {
		return nil, fmt.Errorf("%w: %s holds no intent", ErrInvalid, h)
	}
	return r.Intent, nil
}

// LoadGraph returns the current intent graph (empty if none was saved) and
// the hash of its graph object ("" for none).
func (a *Archive) LoadGraph() (*Graph, string, error) {
	h, err := a.Ref(GraphRef)
	if errors.Is(err, ErrNotFound) {
		return NewGraph(), "", nil
	}
	if err != nil {
		return nil, "", err
	}
	var r graphRecord
	if err := a.getKind(h, KindIntentGraph, &r); err != nil {
		return nil, "", err
	}
	g := NewGraph()
	for _, id := range sortedKeys(r.Intents) {
		i, err := a.GetIntent(r.Intents[id])
		if err != nil {
			return nil, "", fmt.Errorf("intent %q of the graph: %w", id, err)
		}
		if i.ID != id {
			return nil, "", fmt.Errorf("%w: intent %s filed as %q has id %q", ErrGraph, r.Intents[id], id, i.ID)
		}
		g.Intents[id] = i
	}
	g.Edges = r.Edges
	return g, h, g.Validate()
}

// SaveGraph stores every intent of g and a graph object naming them, then
// points GraphRef at it, provided GraphRef is still old (the hash LoadGraph
// returned; "" when there was none); otherwise ErrRefConflict. It returns
// the new graph object's hash.
func (a *Archive) SaveGraph(g *Graph, old string) (string, error) {
	if err := g.Validate(); err != nil {
		return "", err
	}
	g.sortEdges()
	r := graphRecord{Kind: KindIntentGraph, Intents: map[string]string{}, Edges: g.Edges}
	if r.Edges == nil {
		r.Edges = []Edge{}
	}
	for id, i := range g.Intents {
		h, err := a.PutIntent(i)
		if err != nil {
			return "", fmt.Errorf("intent %q: %w", id, err)
		}
		r.Intents[id] = h
	}
	h, err := a.PutValue(r)
	if err != nil {
		return "", err
	}
	return h, a.SetRef(GraphRef, old, h)
}

// UpdateGraph loads the graph, applies fn and saves the result, retrying
// when another writer saved a graph in between. It returns the new hash.
func (a *Archive) UpdateGraph(fn func(*Graph) error) (string, error) {
	for {
		g, old, err := a.LoadGraph()
		if err != nil {
			return "", err
		}
		if err := fn(g); err != nil {
			return "", err
		}
		h, err := a.SaveGraph(g, old)
		if !errors.Is(err, ErrRefConflict) {
			return h, err
		}
	}
}
