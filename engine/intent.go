package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ccos-project/ccos/archive"
	"github.com/ccos-project/ccos/plan"
	"github.com/ccos-project/ccos/rtfs"
)

// planIntent turns a plan's :intent map into an archive intent: :id (the
// plan name and hash when absent), :goal (the plan name when absent),
// :constraints, and every other key kept as metadata. The plan's hash goes
// into the metadata as "plan".
func planIntent(p *plan.Plan, planHash string, now time.Time) (*archive.Intent, string, error) {
	if p.Intent == nil {
		return nil, "", nil
	}
	in := &archive.Intent{Status: "active", Created: now.Unix(), Metadata: map[string]json.RawMessage{}}
	parent := ""
	for i := 0; i < p.Intent.Len(); i++ {
		k, v := p.Intent.Entry(i)
		name := keyName(k)
		switch name {
		case "id", "goal", "parent":
			s, ok := v.(rtfs.String)
			if !ok {
				return nil, "", fmt.Errorf("the plan's :intent :%s must be a string, not %s", name, rtfs.Print(v))
			}
			switch name {
			case "id":
				in.ID = s.V
			case "goal":
				in.Goal = s.V
			default:
				parent = s.V
			}
		case "constraints":
			m, ok := v.(*rtfs.Map)
			if !ok {
				return nil, "", fmt.Errorf("the plan's :intent :constraints must be a map, not %s", rtfs.Print(v))
			}
			in.Constraints = map[string]json.RawMessage{}
			for j := 0; j < m.Len(); j++ {
				ck, cv := m.Entry(j)
				raw, err := jsonOf(cv)
				if err != nil {
					return nil, "", fmt.Errorf("the plan's :intent :constraints %s: %w", rtfs.Print(ck), err)
				}
				in.Constraints[keyName(ck)] = raw
			}
		default:
			raw, err := jsonOf(v)
			if err != nil {
				return nil, "", fmt.Errorf("the plan's :intent %s: %w", rtfs.Print(k), err)
			}
			in.Metadata[name] = raw
		}
	}
	if in.ID == "" {
		in.ID = p.Name + "@" + strings.TrimPrefix(planHash, "sha256:")[:12]
	}
	if in.Goal == "" {
		in.Goal = p.Name
	}
	in.Metadata["plan"], _ = json.Marshal(planHash)
	return in, parent, nil
}

func keyName(k rtfs.Value) string {
	switch k := k.(type) {
	case rtfs.Keyword:
		return k.Name
	case rtfs.String:
		return k.V
	}
	return rtfs.Print(k)
}

func jsonOf(v rtfs.Value) (json.RawMessage, error) {
	s, err := rtfs.ToJSON(v)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(s), nil
}

// archiveIntent stores the plan's intent in the archive's intent graph
// (with an edge to its parent when the graph holds it) and returns a
// function that records the run's outcome as the intent's status.
func archiveIntent(arc *archive.Archive, p *plan.Plan, planHash string) (func(status string) error, error) {
	in, parent, err := planIntent(p, planHash, time.Now())
	if in == nil || err != nil {
		return func(string) error { return nil }, err
	}
	update := func(status string) error {
		in.Status = status
		_, err := arc.UpdateGraph(func(g *archive.Graph) error {
			if err := g.AddIntent(in); err != nil {
				return err
			}
			if _, ok := g.Intents[parent]; ok && parent != "" && parent != in.ID {
				for _, e := range g.Edges {
					if e.From == in.ID && e.To == parent && e.Type == "IsSubgoalOf" {
						return nil
					}
				}
				return g.AddEdge(archive.Edge{From: in.ID, To: parent, Type: "IsSubgoalOf"})
			}
			return nil
		})
		return err
	}
	return update, update("active")
}

func planHashOf(src []byte) string {
	sum := sha256.Sum256(src)
	return "sha256:" + hex.EncodeToString(sum[:])
}
