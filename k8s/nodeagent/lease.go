package nodeagent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ccos-project/ccos/k8s/api/v1alpha1"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The Lease of a node agent is coordination.k8s.io/v1 Lease LeasePrefix+NODE
// in the lease namespace, labelled LabelNodeAgent, held by the node's name
// and renewed every third of its duration. Its annotations advertise what
// the node runs.
const (
	LeasePrefix           = "ccos-node-"
	LabelNodeAgent        = v1alpha1.Group + "/node-agent"
	AnnotationIsolation   = v1alpha1.Group + "/isolation"      // mode=provider,... e.g. container=process,wasm=wasm
	AnnotationProviders   = v1alpha1.Group + "/providers"      // available providers, best first
	AnnotationCapacity    = v1alpha1.Group + "/capacity"       // runs at once
	AnnotationRunning     = v1alpha1.Group + "/running"        // runs held now
	AnnotationChainVerify = v1alpha1.Group + "/chain-verifier" // note verifier key of the node's checkpoints
)

// LeaseName is the name of a node's Lease.
func LeaseName(node string) string { return LeasePrefix + node }

// leaseKeeper creates and renews this node's Lease.
type leaseKeeper struct {
	c        client.Client
	key      types.NamespacedName
	node     string
	duration time.Duration

	mu        sync.Mutex
	lease     *coordinationv1.Lease // as last written
	lastRenew time.Time
}

// advert is what the Lease advertises.
type advert struct {
	offers   Offers
	capacity int
	running  int
	verifier string
}

func (a advert) annotations() map[string]string {
	var iso []string
	for _, m := range slices.Sorted(maps.Keys(a.offers.Isolation)) {
		iso = append(iso, string(m)+"="+a.offers.Isolation[m])
	}
	an := map[string]string{
		AnnotationIsolation: strings.Join(iso, ","),
		AnnotationProviders: strings.Join(a.offers.Providers, ","),
		AnnotationCapacity:  strconv.Itoa(a.capacity),
		AnnotationRunning:   strconv.Itoa(a.running),
	}
	if a.verifier != "" {
		an[AnnotationChainVerify] = a.verifier
	}
	return an
}

// renew writes the Lease with a new renew time and the advert, creating
// it if needed.
func (k *leaseKeeper) renew(ctx context.Context, ad advert) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := metav1.NewMicroTime(time.Now())
	secs := int32(k.duration / time.Second)
	if secs < 1 {
		secs = 1
	}
	for try := 0; try < 3; try++ {
		if k.lease == nil {
			var cur coordinationv1.Lease
			err := k.c.Get(ctx, k.key, &cur)
			switch {
			case apierrors.IsNotFound(err):
				l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: k.key.Name, Namespace: k.key.Namespace,
					Labels: map[string]string{LabelNodeAgent: "true"}, Annotations: ad.annotations()},
					Spec: coordinationv1.LeaseSpec{HolderIdentity: &k.node, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now}}
				if err := k.c.Create(ctx, l); err != nil {
					if apierrors.IsAlreadyExists(err) {
						continue
					}
					return fmt.Errorf("creating the Lease %s: %w", k.key, err)
				}
				k.lease, k.lastRenew = l, now.Time
				return nil
			case err != nil:
				return fmt.Errorf("reading the Lease %s: %w", k.key, err)
			}
			k.lease = &cur
			if cur.Spec.HolderIdentity == nil || *cur.Spec.HolderIdentity != k.node {
				k.lease.Spec.AcquireTime = &now
			}
		}
		l := k.lease.DeepCopy()
		if l.Labels == nil {
			l.Labels = map[string]string{}
		}
		l.Labels[LabelNodeAgent] = "true"
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		maps.Copy(l.Annotations, ad.annotations())
		l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &k.node, &secs, &now
		err := k.c.Update(ctx, l)
		if err == nil {
			k.lease, k.lastRenew = l, now.Time
			return nil
		}
		k.lease = nil // read it again
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("renewing the Lease %s: %w", k.key, err)
		}
	}
	return fmt.Errorf("renewing the Lease %s: it kept changing under this node", k.key)
}

// sinceRenew is how long ago the Lease was last renewed.
func (k *leaseKeeper) sinceRenew() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lastRenew.IsZero() {
		return time.Duration(1<<63 - 1)
	}
	return time.Since(k.lastRenew)
}

// release deletes the Lease, so that other nodes take over this node's
// unfinished runs without waiting for it to expire.
func (k *leaseKeeper) release(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lease == nil {
		return nil
	}
	err := k.c.Delete(ctx, k.lease, client.Preconditions{ResourceVersion: &k.lease.ResourceVersion})
	k.lease = nil
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// leaseWatch judges other nodes' Leases expired by what this node observed,
// not by the renew time they carry (another node's clock): a Lease is
// expired when its resource version has not changed, as seen here, for its
// duration, or when it is missing and this node has been watching for at
// least the default duration.
type leaseWatch struct {
	r        client.Reader
	ns       string
	duration time.Duration
	start    time.Time

	mu   sync.Mutex
	seen map[string]observation
}

type observation struct {
	rv string
	at time.Time
}

func newLeaseWatch(r client.Reader, ns string, d time.Duration) *leaseWatch {
	return &leaseWatch{r: r, ns: ns, duration: d, start: time.Now(), seen: map[string]observation{}}
}

// observe notes a Lease as this node sees it now.
func (w *leaseWatch) observe(l *coordinationv1.Lease) (node string, d time.Duration, at time.Time) {
	node = strings.TrimPrefix(l.Name, LeasePrefix)
	d = w.duration
	if l.Spec.LeaseDurationSeconds != nil && *l.Spec.LeaseDurationSeconds > 0 {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	o, ok := w.seen[node]
	if !ok || o.rv != l.ResourceVersion {
		o = observation{rv: l.ResourceVersion, at: time.Now()}
		w.seen[node] = o
	}
	return node, d, o.at
}

// expiresIn returns how long node's Lease has left; zero or less when it
// has expired.
func (w *leaseWatch) expiresIn(ctx context.Context, node string) (time.Duration, error) {
	var l coordinationv1.Lease
	err := w.r.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: LeaseName(node)}, &l)
	if apierrors.IsNotFound(err) {
		return time.Until(w.start.Add(w.duration)), nil
	}
	if err != nil {
		return 0, err
	}
	_, d, at := w.observe(&l)
	return time.Until(at.Add(d)), nil
}
