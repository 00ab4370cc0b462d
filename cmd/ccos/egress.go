package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/ccos-project/ccos/domain"
	"github.com/ccos-project/ccos/egress"
	"github.com/ccos-project/ccos/engine"
	"github.com/ccos-project/ccos/internal/input"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

// engineFlags are the operator's settings of the run engine: the egress
// proxy's additions (the agent config has no keys for them) and the VM
// providers' options.
type engineFlags struct {
	allowRanges, resolve          []string
	clientCert, clientKey, rootCA string
	logFile, upstream             string
	// snapshots makes qemu restore guests from a snapshot of a booted one.
	snapshots bool
}

func (f *engineFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.allowRanges, "egress-allow-range", nil, "CIDR the agent may reach despite its address class, e.g. an internal service (repeatable)")
	fl.StringArrayVar(&f.resolve, "egress-resolve", nil, "pin NAME=IP in the egress proxy instead of asking DNS (repeatable)")
	fl.StringVar(&f.clientCert, "egress-client-cert", "", "client certificate the egress proxy presents to :mtls origins")
	fl.StringVar(&f.clientKey, "egress-client-key", "", "its private key")
	fl.StringVar(&f.rootCA, "egress-ca", "", "CA certificates (PEM) the egress proxy verifies origins with (default: the system's)")
	fl.StringVar(&f.logFile, "egress-log", "", "append the egress proxy's decisions as JSON lines to this file")
	fl.StringVar(&f.upstream, "egress-upstream", "", "reach every origin through this forward proxy (http://HOST:PORT, e.g. a cluster's egress proxy), by name, after the egress proxy's own decision")
	fl.BoolVar(&f.snapshots, "vm-snapshots", false, "start QEMU guests as clones of a booted, warmed-up template guest (copy-on-write RAM, a fraction of a TCG boot; each clone gets fresh entropy, its own hostname, machine id and workdir, but clones share the template's memory layout)")
}

// open builds the engine of the flags; close releases it and the
// decision log.
func (f engineFlags) open(metrics prometheus.Registerer) (*engine.Engine, func(), error) {
	eo, err := f.egressOptions()
	if err != nil {
		return nil, nil, err
	}
	var logFile io.Closer
	if f.logFile != "" {
		lf, err := os.OpenFile(f.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, usageErr("--egress-log: %v", err)
		}
		eo.DecisionLog, logFile = lf, lf
	}
	eng, err := engine.New(engine.Options{VMSnapshots: f.snapshots, Egress: eo, Metrics: metrics, Logger: cliLogger()})
	if err != nil {
		return nil, nil, rejected("ccos: " + err.Error())
	}
	return eng, func() {
		eng.Close()
		if logFile != nil {
			logFile.Close()
		}
	}, nil
}

// egressOptions parses the egress flags.
func (f engineFlags) egressOptions() (engine.EgressOptions, error) {
	var o engine.EgressOptions
	for _, r := range f.allowRanges {
		pr, err := netip.ParsePrefix(r)
		if err != nil {
			return o, usageErr("--egress-allow-range %q: %v", r, err)
		}
		o.AllowRanges = append(o.AllowRanges, pr.Masked())
	}
	for _, kv := range f.resolve {
		name, ip, ok := strings.Cut(kv, "=")
		host, err := domain.Normalize(name)
		if !ok || err != nil {
			return o, usageErr("--egress-resolve %q: want NAME=IP", kv)
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return o, usageErr("--egress-resolve %q: %v", kv, err)
		}
		if o.Resolve == nil {
			o.Resolve = map[string][]netip.Addr{}
		}
		o.Resolve[host] = append(o.Resolve[host], a)
	}
	if f.clientCert != "" || f.clientKey != "" {
		cert, err := tls.LoadX509KeyPair(f.clientCert, f.clientKey)
		if err != nil {
			return o, usageErr("--egress-client-cert/--egress-client-key: %v", err)
		}
		o.ClientCert = &cert
	}
	if f.upstream != "" {
		u, err := egress.ParseUpstream(f.upstream)
		if err != nil {
			return o, usageErr("--egress-upstream: %v", err)
		}
		o.Upstream = u
	}
	if f.rootCA != "" {
		pem, err := input.ReadFile(f.rootCA, input.MaxSmall)
		if err != nil {
			return o, usageErr("--egress-ca: %v", err)
		}
		o.RootCAs = x509.NewCertPool()
		if !o.RootCAs.AppendCertsFromPEM(pem) {
			return o, usageErr("--egress-ca %s: no PEM certificate", f.rootCA)
		}
	}
	return o, nil
}

// cliLogger prints the engine's warnings on standard error.
func cliLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
