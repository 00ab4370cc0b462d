// Package configcheck is the AgentConfig controller: it loads every
// AgentConfig's RTFS text with the same loader and validator as
// `ccos config validate` and writes the verdict to its status (condition
// Valid, the config's agent id and isolation mode, and every diagnostic as
// `agentconfig/NAMESPACE/NAME:line:col: CODE: message (hint: ...)`), with
// an Event for each verdict. Node agents check the config again before
// they run a plan under it (an AgentRun under an invalid config fails with
// the same diagnostics); this controller is what makes the refusal visible
// on the AgentConfig itself.
package configcheck

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/ccos-project/ccos/k8s/api/v1alpha1"
	"github.com/ccos-project/ccos/k8s/nodeagent"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// ConditionValid is the AgentConfig condition the controller writes.
const ConditionValid = "Valid"

// LeaderElectionID is the Lease the controller replicas elect a leader
// with.
const LeaderElectionID = "ccos-config-controller"

// Options configure the controller.
type Options struct {
	// Namespace limits the AgentConfigs checked; "" checks all.
	Namespace string
	// LeaderElectionNamespace, when set, makes replicas elect one leader
	// with a Lease there.
	LeaderElectionNamespace string
	Logger                  *slog.Logger
}

// Controller checks AgentConfigs.
type Controller struct {
	mgr    manager.Manager
	c      client.Client
	events recorder.EventRecorder
	log    *slog.Logger
}

// New returns the controller for the API server at cfg.
func New(cfg *rest.Config, o Options) (*Controller, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	scheme, err := nodeagent.Scheme()
	if err != nil {
		return nil, err
	}
	mo := manager.Options{
		Scheme:                 scheme,
		Logger:                 logr.FromSlogHandler(o.Logger.Handler()),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             crconfig.Controller{SkipNameValidation: ptr(true)},
	}
	if o.Namespace != "" {
		mo.Cache = cache.Options{DefaultNamespaces: map[string]cache.Config{o.Namespace: {}}}
	}
	if o.LeaderElectionNamespace != "" {
		mo.LeaderElection, mo.LeaderElectionID, mo.LeaderElectionNamespace = true, LeaderElectionID, o.LeaderElectionNamespace
		mo.LeaderElectionReleaseOnCancel = true
	}
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		cfg = rest.CopyConfig(cfg)
		cfg.QPS, cfg.Burst = nodeagent.DefaultQPS, nodeagent.DefaultBurst
	}
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return nil, fmt.Errorf("configcheck: %w", err)
	}
	c := &Controller{mgr: mgr, c: mgr.GetClient(), events: mgr.GetEventRecorder("ccos-config-controller"), log: o.Logger}
	err = builder.ControllerManagedBy(mgr).Named("agentconfig-check").
		For(&v1alpha1.AgentConfig{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(c)
	if err != nil {
		return nil, fmt.Errorf("configcheck: %w", err)
	}
	return c, nil
}

func ptr[T any](v T) *T { return &v }

// Run runs the controller until ctx is done.
func (c *Controller) Run(ctx context.Context) error { return c.mgr.Start(ctx) }

// Reconcile checks one AgentConfig.
func (c *Controller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var ac v1alpha1.AgentConfig
	if err := c.c.Get(ctx, req.NamespacedName, &ac); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	next := ac.DeepCopy()
	cfg, diags := nodeagent.LoadConfig([]byte(ac.Spec.Config), nodeagent.ConfigFile(ac.Namespace, ac.Name))
	st := &next.Status
	st.ObservedGeneration = ac.Generation
	st.Diagnostics = boundDiags(nodeagent.DiagnosticLines(diags))
	cond := metav1.Condition{Type: ConditionValid, ObservedGeneration: ac.Generation}
	if cfg == nil {
		st.AgentID, st.Isolation = "", ""
		cond.Status, cond.Reason = metav1.ConditionFalse, "ConfigInvalid"
		cond.Message = nodeagent.Bound("the config does not validate: "+st.Diagnostics[0], 1024)
	} else {
		st.AgentID, st.Isolation = cfg.AgentID, string(cfg.Orchestrator.Isolation.Mode)
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "ConfigValid", "the config validates"
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	if equality.Semantic.DeepEqual(ac.Status, next.Status) {
		return reconcile.Result{}, nil
	}
	if err := c.c.Status().Update(ctx, next); err != nil {
		if apierrors.IsConflict(err) {
			return reconcile.Result{Requeue: true}, nil
		}
		return reconcile.Result{}, err
	}
	if cfg == nil {
		c.events.Eventf(next, nil, corev1.EventTypeWarning, "ConfigInvalid", "Validate", "%s", nodeagent.Bound(strings.Join(st.Diagnostics, "\n"), 1024))
	} else {
		c.events.Eventf(next, nil, corev1.EventTypeNormal, "ConfigValid", "Validate", "agent %s, isolation :%s", st.AgentID, st.Isolation)
	}
	c.log.Info("agent config checked", "config", req.String(), "valid", cfg != nil, "diagnostics", len(diags))
	return reconcile.Result{}, nil
}

func boundDiags(diags []string) []string {
	out := slices.Clone(diags)
	if len(out) > v1alpha1.MaxDiagnostics {
		out = out[:v1alpha1.MaxDiagnostics]
	}
	for i := range out {
		out[i] = nodeagent.Bound(out[i], v1alpha1.MaxErrorBytes)
	}
	return out
}
