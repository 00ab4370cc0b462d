// Package contract reads Firecracker's REST API definition (the Swagger 2.0
// document firecracker.yaml) and validates JSON documents against its
// definitions, so that tests can prove that every request body and
// --config-file document ccos produces is one Firecracker accepts.
//
// The validator walks the schema as written: $ref, type, format (int32 and
// int64 ranges), required, properties, additionalProperties, items, enum,
// minimum and maximum. Two rules follow Firecracker's decoder rather than
// Swagger's defaults, because Firecracker's Rust types are what finally read
// the document:
//
//   - A property the definition does not name is an error unless the
//     definition allows additional properties (Firecracker's types reject
//     unknown fields).
//   - null for an optional property means "absent" (Firecracker decodes it as
//     None); null for a required property, an array item or a whole
//     document is an error.
package contract

import (
	"errors"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// SharedFile is where the API definition lives inside the project's shared
// reference data (tests find it with internal/testenv).
const SharedFile = "contracts/firecracker/firecracker.yaml"

// API is a loaded Firecracker API definition.
type API struct {
	// Version is info.version of the definition, e.g. "1.17.0-dev".
	Version     string
	definitions map[string]*Schema
	paths       map[string]map[string]*operation // template -> method -> op
}

// Schema is one Swagger 2.0 schema object, as far as the validator reads it.
type Schema struct {
	Ref                  string             `yaml:"$ref"`
	Type                 string             `yaml:"type"`
	Format               string             `yaml:"format"`
	Required             []string           `yaml:"required"`
	Properties           map[string]*Schema `yaml:"properties"`
	AdditionalProperties *Additional        `yaml:"additionalProperties"`
	Items                *Schema            `yaml:"items"`
	Enum                 []any              `yaml:"enum"`
	Minimum              *float64           `yaml:"minimum"`
	Maximum              *float64           `yaml:"maximum"`
	ExclusiveMinimum     bool               `yaml:"exclusiveMinimum"`
	ExclusiveMaximum     bool               `yaml:"exclusiveMaximum"`
}

// Additional is the value of additionalProperties: a boolean or a schema.
type Additional struct {
	Allowed bool
	Schema  *Schema
}

// UnmarshalYAML reads either form of additionalProperties.
func (a *Additional) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		return n.Decode(&a.Allowed)
	}
	a.Allowed = true
	a.Schema = new(Schema)
	return n.Decode(a.Schema)
}

type parameter struct {
	Name     string  `yaml:"name"`
	In       string  `yaml:"in"`
	Required bool    `yaml:"required"`
	Schema   *Schema `yaml:"schema"`
}

type operation struct {
	OperationID string      `yaml:"operationId"`
	Parameters  []parameter `yaml:"parameters"`
}

type document struct {
	Swagger string `yaml:"swagger"`
	Info    struct {
		Version string `yaml:"version"`
	} `yaml:"info"`
	Paths       map[string]map[string]*operation `yaml:"paths"`
	Definitions map[string]*Schema               `yaml:"definitions"`
}

// Load reads and parses the API definition at path.
func Load(path string) (*API, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("contract: %w", err)
	}
	return Parse(b)
}

// Parse parses an API definition.
func Parse(b []byte) (*API, error) {
	var d document
	if err := yaml.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("contract: parsing the API definition: %w", err)
	}
	if d.Swagger != "2.0" {
		return nil, fmt.Errorf("contract: swagger version %q, want \"2.0\"", d.Swagger)
	}
	if len(d.Definitions) == 0 {
		return nil, errors.New("contract: the API definition has no definitions")
	}
	return &API{Version: d.Info.Version, definitions: d.Definitions, paths: d.Paths}, nil
}

// Definition returns the named definition, or nil.
func (a *API) Definition(name string) *Schema { return a.definitions[name] }
