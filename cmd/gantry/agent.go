package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"gantry.io/gantry/api"
	"gantry.io/gantry/executor"
	"gantry.io/gantry/executor/sandbox"
	"gantry.io/gantry/manifest"
)

func init() { register(newAgentCmd) }

// agentFlags are the flags of `gantry agent`.
type agentFlags struct {
	podManifests string
	dataDir      string
	address      string
	namespace    string
	podCIDR4     string
	podCIDR6     string
	bridge       string
	cniBinDir    string
	metricsAddr  string
	statusFile   string
	nodeName     string
	poll         time.Duration
	insecure     []string
	maxParallel  int
	masqTable    string
	noMasq       []string
	server       string
	joinToken    string
	listen       string
	net          netFlags
}

func newAgentCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent --pod-manifests DIR | --server URL --join-token TOKEN",
		Short: "Run this node's pods on containerd",
		Long: `agent runs pods on this node through containerd.

With --pod-manifests DIR it runs the Pod manifests in DIR without any control plane,
as kubelet's staticPodPath does: every .yaml/.yml file below DIR is loaded (Pods, and
the ConfigMaps and Secrets they refer to), the directory is re-read every --poll, a
new or changed Pod is started (a changed spec replaces the pod), and a Pod whose
manifest is removed is stopped and removed with its network namespace. A file with
errors is reported and its pods keep running as they were.

A pod's UID is derived from its namespace and name, so a restarted agent adopts the
containers it left running without restarting them. SIGTERM and SIGINT stop the
agent and leave the pods running.

With --server URL --join-token TOKEN it joins a control plane instead: the token
(printed by the server, or made with 'gantry token create') pins the server's CA and
buys a client certificate for this node, kept under --data-dir/agent; from then on
the agent speaks mTLS only and the token is no longer needed. The server assigns the
node's pod ranges; the agent registers, heartbeats, runs the pods bound to it and
reports their status.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (f.podManifests == "") == (f.server == "") {
				return fmt.Errorf("give exactly one of --pod-manifests DIR or --server URL: %w", api.ErrInvalidArgument)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if f.server != "" {
				return runJoinedAgent(ctx, f, cmd.ErrOrStderr())
			}
			return runAgent(ctx, f, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.podManifests, "pod-manifests", "", "directory of Pod manifests to run (static pods)")
	fl.StringVar(&f.dataDir, "data-dir", "/var/lib/gantry", "agent state: sandboxes, volumes, logs")
	fl.StringVar(&f.address, "containerd-address", "/run/containerd/containerd.sock", "containerd's gRPC socket")
	fl.StringVar(&f.namespace, "namespace", "gantry", "containerd namespace of gantry's containers")
	fl.StringVar(&f.podCIDR4, "pod-cidr-v4", sandbox.DefaultSubnet4, "this node's IPv4 pod range (\"\" for none)")
	fl.StringVar(&f.podCIDR6, "pod-cidr-v6", sandbox.DefaultSubnet6, "this node's IPv6 pod range (\"\" for none)")
	fl.StringVar(&f.bridge, "bridge", sandbox.DefaultBridge, "Linux bridge the pods are attached to")
	fl.StringVar(&f.cniBinDir, "cni-bin-dir", sandbox.DefaultCNIBinDir, "directory of the CNI plugins")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "127.0.0.1:10255", "address of the Prometheus /metrics endpoint (\"\" disables it)")
	fl.StringVar(&f.statusFile, "status-file", "", "append every pod status change as a JSON line to this file (\"-\" for stdout)")
	fl.StringVar(&f.nodeName, "node-name", "", "node name (default: the host name)")
	fl.DurationVar(&f.poll, "poll", 2*time.Second, "how often the manifest directory is re-read")
	fl.StringSliceVar(&f.insecure, "insecure-registry", nil, "registry host[:port] reached over plain HTTP (loopback always is)")
	fl.IntVar(&f.maxParallel, "max-parallel", 4, "pods that pull, create or stop at the same time")
	fl.StringVar(&f.masqTable, "masquerade-table", sandbox.DefaultMasqueradeTable, "nftables table (inet) of the node-wide masquerade rule for the pod ranges")
	fl.StringVar(&f.server, "server", "", "control plane URL (https://HOST:PORT) to join instead of running static pods")
	fl.StringVar(&f.joinToken, "join-token", "", "join token (K10…); needed only until the node holds its certificate")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:0", "address of the agent endpoint the server reaches for logs and exec")
	fl.StringSliceVar(&f.noMasq, "non-masquerade-cidr", nil, "destination range pods reach with their own address (other nodes' pod ranges; repeatable; with --server default: the default cluster CIDRs)")
	f.net.add(cmd)
	return cmd
}

// runAgent runs until ctx is done; it then stops the executor and leaves the pods
// running.
func runAgent(ctx context.Context, f agentFlags, stderr io.Writer) error {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	status, closeStatus, err := openStatusOutput(f.statusFile)
	if err != nil {
		return err
	}
	defer closeStatus()
	sb := sandbox.New(
		sandbox.WithDataDir(filepath.Join(f.dataDir, "sandbox")),
		sandbox.WithCNIBinDir(f.cniBinDir),
		sandbox.WithNetwork("", f.bridge),
		sandbox.WithSubnets(f.podCIDR4, f.podCIDR6),
		sandbox.WithMasqueradeTable(f.masqTable),
		sandbox.WithNonMasqueradeCIDRs(f.noMasq...),
	)
	printer := &transitionPrinter{w: stderr, status: status, last: map[string]string{}}
	e := executor.New(
		executor.WithAddress(f.address),
		executor.WithNamespace(f.namespace),
		executor.WithDataDir(filepath.Join(f.dataDir, "executor")),
		executor.WithSandbox(sb),
		executor.WithRegistryConfig(executor.RegistryConfig{Insecure: f.insecure}),
		executor.WithMaxParallel(f.maxParallel),
		executor.WithStatusSink(printer.update),
		executor.WithLogger(logger),
		executor.WithNodeName(f.nodeName),
	)
	if err := e.Start(ctx); err != nil {
		_ = e.Close()
		return fmt.Errorf("agent: %w", err)
	}
	defer e.Close()

	if f.metricsAddr != "" {
		srv, addr, err := serveMetrics(f.metricsAddr, e)
		if err != nil {
			return err
		}
		defer srv.Close()
		fmt.Fprintf(stderr, "gantry agent: metrics on http://%s/metrics\n", addr)
	}
	fmt.Fprintf(stderr, "gantry agent: running the pods of %s on containerd %s (namespace %s)\n", f.podManifests, f.address, f.namespace)

	src := &staticPods{dir: f.podManifests, byFile: map[string][]executor.Pod{}}
	ticker := time.NewTicker(f.poll)
	defer ticker.Stop()
	lastDiag := ""
	for {
		pods, diags, err := src.load()
		switch {
		case err != nil:
			// An unreadable directory keeps what runs: it may be a mount coming back.
			if msg := err.Error(); msg != lastDiag {
				fmt.Fprintf(stderr, "gantry agent: %v; keeping the running pods\n", err)
				lastDiag = msg
			}
		default:
			if msg := diags.String(); msg != lastDiag {
				if msg != "" {
					fmt.Fprint(stderr, msg)
				}
				lastDiag = msg
			}
			e.Sync(pods)
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(stderr, "gantry agent: stopping; pods keep running and are adopted by the next start")
			// The masquerade rule serves running pods; with none left it goes too.
			if uids, err := sb.List(); err == nil && len(uids) == 0 {
				if err := sb.RemoveMasquerade(); err != nil {
					fmt.Fprintf(stderr, "gantry agent: %v\n", err)
				}
			}
			return nil
		case <-ticker.C:
		}
	}
}

// staticPods loads the pods of a manifest directory. A file whose documents have
// errors keeps contributing the pods it held at its last good load.
type staticPods struct {
	dir    string
	byFile map[string][]executor.Pod
}

func (s *staticPods) load() ([]executor.Pod, manifest.Diagnostics, error) {
	d, diags, err := manifest.Load(s.dir, manifest.WithAllowPlainSecrets(true))
	if err != nil {
		return nil, nil, err
	}
	bad := map[string]bool{}
	for _, dg := range diags.Errors() {
		bad[dg.Pos.File] = true
	}
	cms := map[string]map[string]*corev1.ConfigMap{}
	for _, cm := range d.ConfigMaps {
		if cms[cm.Namespace] == nil {
			cms[cm.Namespace] = map[string]*corev1.ConfigMap{}
		}
		cms[cm.Namespace][cm.Name] = cm
	}
	secs := map[string]map[string]*corev1.Secret{}
	for _, sc := range d.Secrets {
		if secs[sc.Namespace] == nil {
			secs[sc.Namespace] = map[string]*corev1.Secret{}
		}
		secs[sc.Namespace][sc.Name] = sc
	}
	fresh := map[string][]executor.Pod{}
	for _, obj := range d.Objects {
		pod, ok := obj.Typed.(*corev1.Pod)
		if !ok {
			continue
		}
		pod = pod.DeepCopy()
		pod.UID = StaticPodUID(pod.Namespace, pod.Name)
		fresh[obj.Source.File] = append(fresh[obj.Source.File], executor.Pod{Pod: pod, ConfigMaps: cms[pod.Namespace], Secrets: secs[pod.Namespace]})
	}
	for file, pods := range fresh {
		if !bad[file] {
			s.byFile[file] = pods
		}
	}
	for file := range s.byFile {
		if _, ok := fresh[file]; !ok && !bad[file] {
			delete(s.byFile, file)
		}
	}
	seen := map[types.UID]bool{}
	var out []executor.Pod
	files := make([]string, 0, len(s.byFile))
	for f := range s.byFile {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		for _, p := range s.byFile[f] {
			if !seen[p.Pod.UID] {
				seen[p.Pod.UID] = true
				out = append(out, p)
			}
		}
	}
	return out, diags, nil
}

// StaticPodUID derives a static pod's UID from its namespace and name, so that the
// same manifest gets the same UID across agent restarts (and its containers are
// adopted). The form is a UUID (version 5 layout) of a SHA-256 of "ns/name".
func StaticPodUID(namespace, name string) types.UID {
	sum := sha256.Sum256([]byte("gantry.io/static-pod/" + namespace + "/" + name))
	b := sum[:16]
	b[6] = (b[6] & 0x0f) | 0x50
	b[8] = (b[8] & 0x3f) | 0x80
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

// transitionPrinter prints one line per change of a pod's phase, readiness or
// container states to stderr, and every status update as a JSON line to the status
// output, if any.
type transitionPrinter struct {
	mu     sync.Mutex
	w      io.Writer
	status io.Writer
	last   map[string]string
}

func (p *transitionPrinter) update(u executor.PodStatusUpdate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status != nil {
		if b, err := json.Marshal(u); err == nil {
			_, _ = p.status.Write(append(b, '\n'))
		}
	}
	line := summary(u)
	if p.last[u.UID] == line {
		return
	}
	p.last[u.UID] = line
	if u.Deleted {
		delete(p.last, u.UID)
	}
	fmt.Fprintf(p.w, "%s pod %s/%s %s\n", time.Now().UTC().Format(time.RFC3339), u.Namespace, u.Name, line)
}

func summary(u executor.PodStatusUpdate) string {
	if u.Deleted {
		return "removed"
	}
	st := u.Status
	ready := "false"
	for _, c := range st.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = "true"
		}
	}
	var ips []string
	for _, ip := range st.PodIPs {
		ips = append(ips, ip.IP)
	}
	var cs []string
	for _, c := range append(append([]corev1.ContainerStatus{}, st.InitContainerStatuses...), st.ContainerStatuses...) {
		state := "?"
		switch {
		case c.State.Running != nil:
			state = "running"
		case c.State.Waiting != nil:
			state = c.State.Waiting.Reason
		case c.State.Terminated != nil:
			state = c.State.Terminated.Reason
		}
		cs = append(cs, fmt.Sprintf("%s=%s/%d", c.Name, state, c.RestartCount))
	}
	s := fmt.Sprintf("phase=%s ready=%s ips=%s containers=%s", st.Phase, ready, strings.Join(ips, ","), strings.Join(cs, ","))
	if st.Message != "" {
		s += fmt.Sprintf(" message=%q", st.Message)
	}
	return s
}

func openStatusOutput(path string) (io.Writer, func(), error) {
	switch path {
	case "":
		return nil, func() {}, nil
	case "-":
		return os.Stdout, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("--status-file: %w", err)
	}
	return f, func() { _ = f.Close() }, nil
}

// serveMetrics serves the executor's container metrics and the Go runtime's on
// addr/metrics and returns the address actually bound (addr may use port 0).
func serveMetrics(addr string, e *executor.Executor) (*http.Server, string, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}
