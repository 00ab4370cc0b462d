package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group is the API group of the ccos resources.
const Group = "ccos-project.github.io"

// GroupVersion is the group and version of this package's resources.
var GroupVersion = schema.GroupVersion{Group: Group, Version: "v1alpha1"}

// AddToScheme adds this package's types to a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &AgentConfig{}, &AgentConfigList{}, &AgentRun{}, &AgentRunList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
