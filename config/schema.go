package config

import (
	_ "embed"
	"fmt"
	"sync"

	"github.com/ccos-project/ccos/rtfs"
)

//go:embed schema.rtfs
var schemaSource []byte

// SchemaSource returns the RTFS text of the schema.
func SchemaSource() []byte { return append([]byte(nil), schemaSource...) }

// NamedType is one (def Name type) of the schema.
type NamedType struct {
	Name string
	Type *rtfs.Type
}

// Schema is the parsed agent.config schema.
type Schema struct {
	// Root is the type of a whole config (AgentConfig).
	Root *rtfs.Type
	// Defs are the named types in the order they are defined, Root last.
	Defs []NamedType
}

// checkOptions are the type-checker options every config is checked with.
var checkOptions = rtfs.CheckOptions{FoldKeys: true, MaxErrors: 200}

var loadSchema = sync.OnceValues(func() (*Schema, error) {
	return parseSchema(schemaSource, "config/schema.rtfs")
})

// LoadSchema returns the schema embedded in the binary. It fails only if
// schema.rtfs itself is malformed, which a test rules out.
func LoadSchema() (*Schema, error) { return loadSchema() }

// parseSchema reads (def Name type) forms; the last one is the root.
func parseSchema(src []byte, file string) (*Schema, error) {
	read, err := rtfs.Read(src, file, rtfs.ReadOptions{})
	if err != nil {
		return nil, err
	}
	env := rtfs.NewTypeEnv()
	s := &Schema{}
	for _, f := range read.Forms {
		l, ok := f.(*rtfs.List)
		if !ok || rtfs.HeadName(f) != "def" || len(l.Items) != 3 {
			return nil, fmt.Errorf("%s: schema forms are (def Name type), found %s", f.Span(), rtfs.Describe(f))
		}
		name, ok := l.Items[1].(rtfs.Symbol)
		if !ok {
			return nil, fmt.Errorf("%s: (def Name type) needs a symbol name", f.Span())
		}
		t, err := env.Define(name.Name, l.Items[2])
		if err != nil {
			return nil, err
		}
		s.Defs = append(s.Defs, NamedType{Name: name.Name, Type: t})
	}
	if len(s.Defs) == 0 {
		return nil, fmt.Errorf("%s: the schema defines no type", file)
	}
	s.Root = s.Defs[len(s.Defs)-1].Type
	return s, nil
}
