package k8s

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Every object of the kustomization is printed once, each a whole
// Kubernetes object, in the ccos-system namespace or cluster-wide, with
// the image of the kustomization's images entry.
func TestManifests(t *testing.T) {
	b, err := Manifests()
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	seen := map[string]bool{}
	for {
		var obj struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Metadata   struct {
				Name, Namespace string
			} `yaml:"metadata"`
		}
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if obj.APIVersion == "" || obj.Kind == "" || obj.Metadata.Name == "" {
			t.Errorf("incomplete object %+v", obj)
		}
		if obj.Metadata.Namespace != "" && obj.Metadata.Namespace != "ccos-system" {
			t.Errorf("%s/%s in namespace %s", obj.Kind, obj.Metadata.Name, obj.Metadata.Namespace)
		}
		key := obj.Kind + "/" + obj.Metadata.Name
		if seen[key] {
			t.Errorf("%s twice", key)
		}
		seen[key] = true
	}
	for _, want := range []string{"Namespace/ccos-system", "CustomResourceDefinition/agentruns.ccos-project.github.io",
		"CustomResourceDefinition/agentconfigs.ccos-project.github.io", "ClusterRole/ccos-node", "DaemonSet/ccos-node",
		"Deployment/ccos-config-controller", "Deployment/ccos-egress", "Service/ccos-egress", "NetworkPolicy/default-deny",
		"RuntimeClass/gvisor"} {
		if !seen[want] {
			t.Errorf("no %s among %d objects", want, len(seen))
		}
	}
	if strings.Contains(string(b), "image: ccos\n") || !strings.Contains(string(b), "image: ghcr.io/ccos-project/ccos:latest\n") {
		t.Error("the image was not set from the kustomization")
	}
}
