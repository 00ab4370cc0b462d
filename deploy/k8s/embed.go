// Package k8s holds the Kubernetes deployment of ccos (a kustomization:
// the CRDs, least-privilege RBAC, the node agent DaemonSet, the config
// controller, the egress proxy, NetworkPolicies and a gVisor RuntimeClass)
// and gives it to `ccos k8s manifests`, which prints the same objects as
// `kubectl kustomize deploy/k8s`.
package k8s

import (
	"bytes"
	"embed"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed kustomization.yaml *.yaml crd/*.yaml
var files embed.FS

// Manifests returns every object of the kustomization as one YAML stream,
// in the order of its resources, with the image named by its images entry.
func Manifests() ([]byte, error) {
	var k struct {
		Resources []string `yaml:"resources"`
		Images    []struct {
			Name    string `yaml:"name"`
			NewName string `yaml:"newName"`
			NewTag  string `yaml:"newTag"`
		} `yaml:"images"`
	}
	raw, err := files.ReadFile("kustomization.yaml")
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		return nil, fmt.Errorf("deploy/k8s/kustomization.yaml: %w", err)
	}
	var out bytes.Buffer
	for _, r := range k.Resources {
		b, err := files.ReadFile(r)
		if err != nil {
			return nil, fmt.Errorf("deploy/k8s: resource %s: %w", r, err)
		}
		for _, doc := range splitDocuments(b) {
			for _, im := range k.Images {
				doc = strings.ReplaceAll(doc, "image: "+im.Name+"\n", "image: "+im.NewName+":"+im.NewTag+"\n")
			}
			out.WriteString("---\n# Source: " + r + "\n")
			out.WriteString(doc)
		}
	}
	return out.Bytes(), nil
}

// splitDocuments splits a YAML stream at its "---" lines, dropping
// documents that hold only comments.
func splitDocuments(b []byte) []string {
	var docs []string
	for _, d := range strings.Split("\n"+string(b), "\n---\n") {
		d = strings.TrimLeft(d, "\n")
		if hasContent(d) {
			if !strings.HasSuffix(d, "\n") {
				d += "\n"
			}
			docs = append(docs, d)
		}
	}
	return docs
}

func hasContent(doc string) bool {
	for _, l := range strings.Split(doc, "\n") {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}
