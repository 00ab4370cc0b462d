package configcheck

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ccos-project/ccos/internal/testenv"
	"github.com/ccos-project/ccos/k8s/api/v1alpha1"
	"github.com/ccos-project/ccos/k8s/internal/kubetest"
	"github.com/ccos-project/ccos/k8s/nodeagent"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A valid config gets Valid=True with its agent id and isolation; an
// invalid one Valid=False with every diagnostic (file:line:col: CODE) and
// a ConfigInvalid Event; fixing it flips the verdict.
func TestVerdicts(t *testing.T) {
	scheme, err := nodeagent.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	env, cfg, ok, err := kubetest.Start(scheme)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		testenv.Missing(t, kubetest.What, kubetest.HowToGet)
	}
	defer env.Stop()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ns = "configs"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "elect"}}); err != nil {
		t.Fatal(err)
	}
	ctrl, err := New(cfg, Options{LeaderElectionNamespace: "elect", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(cctx) }()
	defer func() { cancel(); <-done }()

	create := func(name, text string) {
		ac := &v1alpha1.AgentConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.AgentConfigSpec{Config: text}}
		if err := c.Create(ctx, ac); err != nil {
			t.Fatal(err)
		}
	}
	create("good", `(assoc-in (profile:minimal "agent.good") [:orchestrator :isolation :mode] :container)`)
	create("bad", "(-> (profile:minimal \"agent.bad\")\n  (assoc-in [:orchestrator :isolation :mode] :teleport))")

	good := wait(t, c, ns, "good", func(ac *v1alpha1.AgentConfig) bool {
		return meta.IsStatusConditionTrue(ac.Status.Conditions, ConditionValid)
	})
	if good.Status.AgentID != "agent.good" || good.Status.Isolation != "container" || len(good.Status.Diagnostics) != 0 {
		t.Errorf("valid config's status %+v", good.Status)
	}
	want := "agentconfig/configs/bad:2:46: INVALID_VALUE"
	bad := wait(t, c, ns, "bad", func(ac *v1alpha1.AgentConfig) bool {
		return meta.IsStatusConditionFalse(ac.Status.Conditions, ConditionValid)
	})
	if !slices.ContainsFunc(bad.Status.Diagnostics, func(d string) bool { return strings.HasPrefix(d, want) }) || bad.Status.AgentID != "" {
		t.Errorf("invalid config's status %+v", bad.Status)
	}
	if c := meta.FindStatusCondition(bad.Status.Conditions, ConditionValid); !strings.Contains(c.Message, want) {
		t.Errorf("condition message %q", c.Message)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var evs eventsv1.EventList
		if err := c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(evs.Items, func(e eventsv1.Event) bool {
			return e.Regarding.Name == "bad" && e.Reason == "ConfigInvalid" && strings.Contains(e.Note, want)
		}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ConfigInvalid event among %d", len(evs.Items))
		}
		time.Sleep(100 * time.Millisecond)
	}

	bad.Spec.Config = `(profile:minimal "agent.fixed")`
	if err := c.Update(ctx, bad); err != nil {
		t.Fatal(err)
	}
	fixed := wait(t, c, ns, "bad", func(ac *v1alpha1.AgentConfig) bool {
		return meta.IsStatusConditionTrue(ac.Status.Conditions, ConditionValid) && ac.Status.ObservedGeneration == ac.Generation
	})
	if fixed.Status.AgentID != "agent.fixed" || len(fixed.Status.Diagnostics) != 0 {
		t.Errorf("fixed config's status %+v", fixed.Status)
	}
}

func wait(t *testing.T, c client.Client, ns, name string, cond func(*v1alpha1.AgentConfig) bool) *v1alpha1.AgentConfig {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var ac v1alpha1.AgentConfig
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &ac); err != nil {
			t.Fatal(err)
		}
		if cond(&ac) {
			return &ac
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out; status %s", name, fmt.Sprint(ac.Status))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
