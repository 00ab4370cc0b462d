package archive

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ccos-project/ccos/rtfs"
)

// BackupVersion is the intent graph backup format this package writes.
const BackupVersion = "1.1"

// MaxBackupSize bounds the backup files ReadBackup accepts.
const MaxBackupSize = 256 << 20

// Errors of the backup reader.
var (
	// ErrBackup is wrapped by every error of ReadBackup.
	ErrBackup = errors.New("archive: invalid intent graph backup")
	// ErrBackupVersion is a backup without a version or of a major version
	// other than 1.
	ErrBackupVersion = errors.New("unsupported backup version")
	// ErrSnapshotMismatch is an "rtfs" snapshot that does not read, or that
	// names other intents or edges than the JSON.
	ErrSnapshotMismatch = errors.New("rtfs snapshot disagrees with the JSON")
)

// Backup is an intent graph backup (format 1.1, see the package
// documentation). Manifest and the unknown top-level members in Extra are
// kept when a backup is read and written again.
type Backup struct {
	Version   string                     `json:"version"`
	Timestamp int64                      `json:"timestamp"`
	Intents   map[string]*Intent         `json:"intents"`
	Edges     []Edge                     `json:"edges"`
	Manifest  map[string]json.RawMessage `json:"manifest,omitempty"`
	RTFS      string                     `json:"rtfs,omitempty"`
	Extra     map[string]json.RawMessage `json:"-"`
}

var backupKnown = []string{"version", "timestamp", "intents", "edges", "manifest", "rtfs"}

type backupFields Backup

// MarshalJSON writes the known members and the Extra ones.
func (b Backup) MarshalJSON() ([]byte, error) {
	return marshalWithExtra(backupFields(b), b.Extra, backupKnown)
}

// UnmarshalJSON reads the known members and keeps the others in Extra.
func (b *Backup) UnmarshalJSON(data []byte) error {
	var f backupFields
	extra, err := unmarshalWithExtra(data, &f, backupKnown)
	if err != nil {
		return err
	}
	*b = Backup(f)
	b.Extra = extra
	return nil
}

// NewBackup returns a version 1.1 backup of g taken at the Unix time ts,
// with its RTFS snapshot.
func NewBackup(g *Graph, ts int64, manifest map[string]json.RawMessage) (*Backup, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	g.sortEdges()
	b := &Backup{Version: BackupVersion, Timestamp: ts, Intents: g.Intents, Edges: g.Edges, Manifest: manifest}
	if b.Edges == nil {
		b.Edges = []Edge{}
	}
	snap, err := Snapshot(g)
	if err != nil {
		return nil, err
	}
	b.RTFS = snap
	return b, nil
}

// Encode returns the backup as indented JSON with a final newline.
func (b *Backup) Encode() ([]byte, error) {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("archive: encoding backup: %w", err)
	}
	return append(data, '\n'), nil
}

// Graph returns the intent graph the backup holds.
func (b *Backup) Graph() *Graph {
	g := NewGraph()
	for id, i := range b.Intents {
		g.Intents[id] = i
	}
	g.Edges = slices.Clone(b.Edges)
	return g
}

var versionRE = regexp.MustCompile(`^([0-9]+)\.([0-9]+)$`)

// ReadBackup decodes and checks a backup: the version must be 1.x (1.0 and
// 1.1 are read alike; a later 1.x is read as 1.1 with its unknown members
// kept), every intent must be filed under its own id (an intent without id
// takes its key), every edge must join two intents, and the "rtfs"
// snapshot, when present, must read and name the same intents and edges.
// Every error wraps ErrBackup.
func ReadBackup(data []byte) (*Backup, error) {
	if len(data) > MaxBackupSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBackup, len(data), MaxBackupSize)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBackup, err)
	}
	var v string
	if err := json.Unmarshal(top["version"], &v); err != nil {
		return nil, fmt.Errorf("%w: %w: \"version\" must be a string such as %q, got %s", ErrBackup, ErrBackupVersion, BackupVersion, top["version"])
	}
	m := versionRE.FindStringSubmatch(v)
	if m == nil || m[1] != "1" {
		return nil, fmt.Errorf("%w: %w: %q (this ccos reads 1.x backups)", ErrBackup, ErrBackupVersion, v)
	}
	var b Backup
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBackup, err)
	}
	if b.Intents == nil {
		b.Intents = map[string]*Intent{}
	}
	if b.Edges == nil {
		b.Edges = []Edge{}
	}
	for id, i := range b.Intents {
		if i == nil {
			return nil, fmt.Errorf("%w: intent %q is null", ErrBackup, id)
		}
		if i.ID == "" {
			i.ID = id
		}
	}
	if err := b.Graph().Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBackup, err)
	}
	if b.RTFS != "" {
		if err := checkSnapshot(b.RTFS, b.Graph()); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBackup, err)
		}
	}
	return &b, nil
}

// ReadBackupFile reads and checks the backup file path.
func ReadBackupFile(path string) (*Backup, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	b, err := ReadBackup(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// WriteBackupFile writes b to path atomically (temp file in the same
// directory, fsync, rename, directory fsync), readable by the owner only.
func WriteBackupFile(path string, b *Backup) error {
	data, err := b.Encode()
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Dir(path), filepath.Base(path), data, "backup"); err != nil {
		return fmt.Errorf("archive: writing %s: %w", path, err)
	}
	return nil
}

// Snapshot returns the RTFS text of g:
//
//	(intent-graph
//	  (intents
//	    (intent {:id "a" :goal "..." :status "active" :created 1692796800 ...}))
//	  (edges
//	    (edge {:from "a" :to "b" :type "DependsOn"})))
//
// one intent or edge per line, intents by id, edges by from, to, type. JSON
// objects become maps with string keys, arrays vectors, integral numbers
// integers and others floats; unknown members appear under :extra.
func Snapshot(g *Graph) (string, error) {
	var sb strings.Builder
	sb.WriteString("(intent-graph\n  (intents")
	for _, id := range sortedKeys(g.Intents) {
		m, err := intentRTFS(g.Intents[id])
		if err != nil {
			return "", fmt.Errorf("intent %q: %w", id, err)
		}
		sb.WriteString("\n    (intent " + rtfs.Print(m) + ")")
	}
	sb.WriteString(")\n  (edges")
	edges := slices.Clone(g.Edges)
	(&Graph{Edges: edges}).sortEdges()
	for _, e := range edges {
		m, err := edgeRTFS(e)
		if err != nil {
			return "", fmt.Errorf("edge %s -> %s: %w", e.From, e.To, err)
		}
		sb.WriteString("\n    (edge " + rtfs.Print(m) + ")")
	}
	sb.WriteString("))\n")
	return sb.String(), nil
}

func kw(name string) rtfs.Value { return rtfs.Keyword{Name: name} }

func intentRTFS(i *Intent) (*rtfs.Map, error) {
	m := rtfs.MapOf(kw("id"), rtfs.String{V: i.ID}, kw("goal"), rtfs.String{V: i.Goal})
	if i.Status != "" {
		m.Set(kw("status"), rtfs.String{V: i.Status})
	}
	if i.Created != 0 {
		m.Set(kw("created"), rtfs.Int{V: i.Created})
	}
	for _, f := range []struct {
		name string
		raw  map[string]json.RawMessage
	}{{"constraints", i.Constraints}, {"metadata", i.Metadata}, {"extra", i.Extra}} {
		if len(f.raw) == 0 {
			continue
		}
		v, err := rawMapRTFS(f.raw)
		if err != nil {
			return nil, err
		}
		m.Set(kw(f.name), v)
	}
	return m, nil
}

func edgeRTFS(e Edge) (*rtfs.Map, error) {
	m := rtfs.MapOf(kw("from"), rtfs.String{V: e.From}, kw("to"), rtfs.String{V: e.To}, kw("type"), rtfs.String{V: e.Type})
	if e.Weight != nil {
		m.Set(kw("weight"), numberRTFS(*e.Weight))
	}
	for _, f := range []struct {
		name string
		raw  map[string]json.RawMessage
	}{{"metadata", e.Metadata}, {"extra", e.Extra}} {
		if len(f.raw) == 0 {
			continue
		}
		v, err := rawMapRTFS(f.raw)
		if err != nil {
			return nil, err
		}
		m.Set(kw(f.name), v)
	}
	return m, nil
}

func rawMapRTFS(raw map[string]json.RawMessage) (rtfs.Value, error) {
	m := rtfs.NewMap(len(raw))
	for _, k := range sortedKeys(raw) {
		v, err := jsonRTFS(raw[k])
		if err != nil {
			return nil, err
		}
		m.Set(rtfs.String{V: k}, v)
	}
	return m, nil
}

func jsonRTFS(raw json.RawMessage) (rtfs.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return anyRTFS(v)
}

func anyRTFS(v any) (rtfs.Value, error) {
	switch x := v.(type) {
	case nil:
		return rtfs.Nil{}, nil
	case bool:
		return rtfs.Bool{V: x}, nil
	case string:
		return rtfs.String{V: x}, nil
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return rtfs.Int{V: n}, nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("number %s out of range", x)
		}
		return rtfs.Float{V: f}, nil
	case []any:
		items := make([]rtfs.Value, len(x))
		for i, e := range x {
			item, err := anyRTFS(e)
			if err != nil {
				return nil, err
			}
			items[i] = item
		}
		return rtfs.NewVector(items...), nil
	case map[string]any:
		m := rtfs.NewMap(len(x))
		for _, k := range sortedKeys(x) {
			item, err := anyRTFS(x[k])
			if err != nil {
				return nil, err
			}
			m.Set(rtfs.String{V: k}, item)
		}
		return m, nil
	}
	return nil, fmt.Errorf("unexpected JSON value %T", v)
}

func numberRTFS(f float64) rtfs.Value {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return rtfs.Int{V: int64(f)}
	}
	return rtfs.Float{V: f}
}

type edgeKey struct{ from, to, typ string }

// checkSnapshot reads snap and checks that it is one (intent-graph ...)
// form naming exactly the intents and edges of g.
func checkSnapshot(snap string, g *Graph) error {
	forms, err := rtfs.ReadString(snap, "rtfs")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSnapshotMismatch, err)
	}
	ids, edges, err := snapshotContents(forms)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSnapshotMismatch, err)
	}
	want := sortedKeys(g.Intents)
	slices.Sort(ids)
	if !slices.Equal(ids, want) {
		return fmt.Errorf("%w: intents %q, JSON has %q", ErrSnapshotMismatch, ids, want)
	}
	var wantEdges []edgeKey
	for _, e := range g.Edges {
		wantEdges = append(wantEdges, edgeKey{e.From, e.To, e.Type})
	}
	cmpKey := func(x, y edgeKey) int {
		return cmp.Or(cmp.Compare(x.from, y.from), cmp.Compare(x.to, y.to), cmp.Compare(x.typ, y.typ))
	}
	slices.SortFunc(edges, cmpKey)
	slices.SortFunc(wantEdges, cmpKey)
	if !slices.Equal(edges, wantEdges) {
		return fmt.Errorf("%w: %d edges, JSON has %d (or they differ)", ErrSnapshotMismatch, len(edges), len(wantEdges))
	}
	return nil
}

func snapshotContents(forms []rtfs.Value) ([]string, []edgeKey, error) {
	if len(forms) != 1 {
		return nil, nil, fmt.Errorf("want one (intent-graph ...) form, got %d forms", len(forms))
	}
	top, ok := forms[0].(*rtfs.List)
	if !ok || len(top.Items) == 0 || !isSymbol(top.Items[0], "intent-graph") {
		return nil, nil, errors.New("the form is not (intent-graph ...)")
	}
	ids := []string{}
	var edges []edgeKey
	for _, part := range top.Items[1:] {
		l, ok := part.(*rtfs.List)
		if !ok || len(l.Items) == 0 {
			return nil, nil, fmt.Errorf("%s: want (intents ...) or (edges ...)", part.Span())
		}
		switch {
		case isSymbol(l.Items[0], "intents"):
			for _, it := range l.Items[1:] {
				m, err := entryMap(it, "intent")
				if err != nil {
					return nil, nil, err
				}
				ids = append(ids, stringAt(m, "id"))
			}
		case isSymbol(l.Items[0], "edges"):
			for _, it := range l.Items[1:] {
				m, err := entryMap(it, "edge")
				if err != nil {
					return nil, nil, err
				}
				edges = append(edges, edgeKey{stringAt(m, "from"), stringAt(m, "to"), stringAt(m, "type")})
			}
		default:
			return nil, nil, fmt.Errorf("%s: want (intents ...) or (edges ...)", l.Span())
		}
	}
	return ids, edges, nil
}

func isSymbol(v rtfs.Value, name string) bool {
	s, ok := v.(rtfs.Symbol)
	return ok && s.Name == name
}

func entryMap(v rtfs.Value, head string) (*rtfs.Map, error) {
	l, ok := v.(*rtfs.List)
	if !ok || len(l.Items) != 2 || !isSymbol(l.Items[0], head) {
		return nil, fmt.Errorf("%s: want (%s {...})", v.Span(), head)
	}
	m, ok := l.Items[1].(*rtfs.Map)
	if !ok {
		return nil, fmt.Errorf("%s: want (%s {...})", v.Span(), head)
	}
	return m, nil
}

func stringAt(m *rtfs.Map, key string) string {
	v, _ := m.GetKeyword(key)
	s, _ := v.(rtfs.String)
	return s.V
}

// Backup returns a version 1.1 backup of the archive's intent graph taken
// at the Unix time ts.
func (a *Archive) Backup(ts int64, manifest map[string]json.RawMessage) (*Backup, error) {
	g, _, err := a.LoadGraph()
	if err != nil {
		return nil, err
	}
	return NewBackup(g, ts, manifest)
}

// Restore makes the backup's graph the archive's intent graph, replacing
// the current one (whose objects stay in the archive), and returns the new
// graph object's hash. The backup's manifest and unknown top-level members
// are not stored; unknown members of intents and edges are.
func (a *Archive) Restore(b *Backup) (string, error) {
	for {
		_, old, err := a.LoadGraph()
		if err != nil && !errors.Is(err, ErrGraph) {
			return "", err
		}
		h, err := a.SaveGraph(b.Graph(), old)
		if !errors.Is(err, ErrRefConflict) {
			return h, err
		}
	}
}
