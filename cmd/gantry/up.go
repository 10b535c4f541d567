package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/controlplane/agentclient"
	"gantry.io/gantry/executor"
	"gantry.io/gantry/executor/sandbox"
)

func init() { register(newUpCmd) }

// nodeAgentConfig is what a node agent joined to a control plane needs; `gantry up`
// fills it for the local node, `gantry agent --server` can fill it from its flags.
type nodeAgentConfig struct {
	server     string // https://HOST:PORT
	joinToken  string // K10…; only needed when dataDir holds no credentials yet
	nodeName   string
	dataDir    string // credentials, sandboxes, executor state
	containerd string // socket
	namespace  string // containerd namespace
	listen     string // agent endpoint (logs/exec)
	bridge     string
	cniBinDir  string
	logger     *slog.Logger
	// serviceTable is the nftables table of service VIPs ("" netsvc's default);
	// dnsUpstreams the resolvers the node's DNS forwards to (nil: /etc/resolv.conf).
	serviceTable string
	dnsUpstreams []string
	// clusterCIDRs are the ranges every node's pod CIDR is cut from: traffic from a
	// pod to them (pods on other nodes) keeps its source address; everything else
	// leaving the node is masqueraded.
	clusterCIDRs []string
}

// nodeAgent is a running agent: the control plane client and the executor it feeds.
type nodeAgent struct {
	agent *agentclient.Agent
	exec  *executor.Executor
	creds *agentclient.Credentials
	// net is the node's service networking, fed by the network watch that netStop
	// ends (netDone closes when it has).
	net     *netAgent
	netStop context.CancelFunc
	netDone chan struct{}
}

// Close stops the agent and the executor; containers keep running and are adopted by
// the next start.
func (n *nodeAgent) Close() {
	if n.netStop != nil {
		n.netStop()
		<-n.netDone
		n.netStop = nil
	}
	if n.net != nil {
		n.net.Close() // rules and routes stay for the next start
		n.net = nil
	}
	if n.agent != nil {
		n.agent.Close()
	}
	if n.exec != nil {
		n.exec.Close()
	}
}

// startNodeAgent joins (once; the credentials are kept under dataDir/agent), starts
// the executor on the node's pod CIDRs and connects it to the control plane: pods
// bound to the node go to executor.Sync, executor status goes back batched, logs and
// exec are served to the server.
func startNodeAgent(ctx context.Context, c nodeAgentConfig) (*nodeAgent, error) {
	credDir := filepath.Join(c.dataDir, "agent")
	creds, err := agentclient.LoadCredentials(credDir)
	if errors.Is(err, api.ErrNotFound) {
		if c.joinToken == "" {
			return nil, fmt.Errorf("%s holds no node certificate and no --join-token was given: %w", credDir, api.ErrInvalidArgument)
		}
		jt, perr := api.ParseJoinToken(c.joinToken)
		if perr != nil {
			return nil, perr
		}
		if creds, err = agentclient.Join(ctx, c.server, jt, c.nodeName); err == nil {
			err = creds.Save(credDir)
		}
	}
	if err != nil {
		return nil, err
	}
	if creds.NodeName != c.nodeName && c.nodeName != "" {
		return nil, fmt.Errorf("%s holds the certificate of node %q, not %q: remove it to join anew: %w", credDir, creds.NodeName, c.nodeName, api.ErrFailedPrecondition)
	}
	v4, v6 := splitCIDRs(creds.PodCIDRs)
	// Service VIPs, DNS and pod routes: nftables unusable → the agent refuses to start.
	na, err := newNetAgent(netAgentConfig{nodeName: creds.NodeName, podCIDRs: creds.PodCIDRs,
		table: c.serviceTable, upstreams: c.dnsUpstreams, logger: c.logger})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", creds.NodeName, err)
	}
	if err := na.Start(ctx); err != nil {
		na.Close()
		return nil, fmt.Errorf("node %s: %w", creds.NodeName, err)
	}
	sb := sandbox.New(sandbox.WithDataDir(filepath.Join(c.dataDir, "sandbox")), sandbox.WithCNIBinDir(c.cniBinDir),
		sandbox.WithNetwork("", c.bridge), sandbox.WithSubnets(v4, v6), sandbox.WithResolvConfFunc(na.ResolvConf),
		sandbox.WithNonMasqueradeCIDRs(nonEmpty(c.clusterCIDRs)...))
	n := &nodeAgent{creds: creds, net: na}
	ev := &eventForwarder{seen: map[string]time.Time{}}
	// Both objects exist before either starts, so the status sink always has an agent.
	var agent *agentclient.Agent
	n.exec = executor.New(
		executor.WithAddress(c.containerd),
		executor.WithNamespace(c.namespace),
		executor.WithDataDir(filepath.Join(c.dataDir, "executor")),
		executor.WithSandbox(sb),
		executor.WithNodeName(creds.NodeName),
		executor.WithLogger(c.logger),
		executor.WithStatusSink(func(u executor.PodStatusUpdate) {
			if u.Deleted {
				return
			}
			agent.ReportStatus(u.Namespace, u.Name, types.UID(u.UID), u.Status)
			ev.forward(agent, u)
		}),
	)
	// Pods that reference ConfigMaps or Secrets reach the executor through the
	// Materializer, which fetches their material from the server first (held back
	// with SecretUnavailable in their status while it cannot).
	mat := agentclient.NewMaterializer(nil, func(ready []agentclient.ReadyPod) {
		set := make([]executor.Pod, 0, len(ready))
		for _, rp := range ready {
			set = append(set, executor.Pod{Pod: rp.Pod, ConfigMaps: rp.ConfigMaps, Secrets: rp.Secrets})
		}
		n.exec.Sync(set)
		// Adopted pods whose status did not change since the last run are reported
		// once here (the agent drops what equals its last report).
		for _, rp := range ready {
			if st, ok := n.exec.Status(string(rp.Pod.UID)); ok {
				agent.ReportStatus(rp.Pod.Namespace, rp.Pod.Name, rp.Pod.UID, st)
			}
		}
	}, agentclient.WithMaterialLogger(c.logger))
	agent = agentclient.New(c.server, creds,
		agentclient.WithListen(c.listen),
		agentclient.WithRuntime(executorRuntime{n.exec}),
		agentclient.WithLogger(c.logger),
		agentclient.WithPodsHandler(mat.Pods))
	mat.UseAgent(agent)
	go mat.Run(ctx)
	n.agent = agent
	if err := n.exec.Start(ctx); err != nil {
		n.exec.Close()
		na.Close()
		return nil, fmt.Errorf("executor: %w", err)
	}
	if err := agent.Start(ctx); err != nil {
		n.Close()
		return nil, err
	}
	wctx, stop := context.WithCancel(ctx)
	n.netStop, n.netDone = stop, make(chan struct{})
	go func() {
		defer close(n.netDone)
		agent.WatchNetwork(wctx, func(nw agentclient.Network) {
			na.Apply(netUpdate{Revision: nw.Revision, Services: nw.Services, Nodes: nw.Nodes, ClusterDomain: nw.ClusterDomain})
		})
	}()
	return n, nil
}

// nonEmpty returns ss without its empty strings.
func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func splitCIDRs(cidrs []string) (v4, v6 string) {
	for _, c := range cidrs {
		ip, _, err := net.ParseCIDR(c)
		if err != nil {
			continue
		}
		if ip.To4() != nil {
			v4 = c
		} else {
			v6 = c
		}
	}
	return v4, v6
}

// executorRuntime adapts the executor to the agent endpoint's Runtime.
type executorRuntime struct{ e *executor.Executor }

func defaultContainer(pod *corev1.Pod, c string) (string, error) {
	if c != "" {
		return c, nil
	}
	if len(pod.Spec.Containers) == 1 {
		return pod.Spec.Containers[0].Name, nil
	}
	var names []string
	for _, x := range pod.Spec.Containers {
		names = append(names, x.Name)
	}
	return "", fmt.Errorf("pod %s has %d containers %v: choose one with -c: %w", pod.Name, len(names), names, api.ErrInvalidArgument)
}

func (r executorRuntime) Logs(ctx context.Context, pod *corev1.Pod, o agentclient.LogOptions, w io.Writer) error {
	c, err := defaultContainer(pod, o.Container)
	if err != nil {
		return err
	}
	if o.TailLines == 0 && !o.Follow {
		return nil
	}
	tail := int(o.TailLines)
	if tail < 0 {
		tail = 0 // the executor's "all"
	}
	return r.e.Logs(ctx, pod.Namespace, pod.Name, c, executor.LogOptions{Follow: o.Follow, Tail: tail, Previous: o.Previous}, w)
}

func (r executorRuntime) Exec(ctx context.Context, pod *corev1.Pod, o agentclient.ExecOptions) (int, error) {
	c, err := defaultContainer(pod, o.Container)
	if err != nil {
		return -1, err
	}
	return r.e.Exec(ctx, pod.Namespace, pod.Name, c, o.Command, o.Stdin, o.Stdout, o.Stderr)
}

// eventForwarder turns the executor's per-pod event ring into API events, each once.
type eventForwarder struct {
	mu   sync.Mutex
	seen map[string]time.Time // pod uid → time of the newest event forwarded
}

func (f *eventForwarder) forward(a *agentclient.Agent, u executor.PodStatusUpdate) {
	f.mu.Lock()
	last := f.seen[u.UID]
	var fresh []executor.Event
	for _, e := range u.Events {
		if e.Time.After(last) {
			fresh = append(fresh, e)
			last = e.Time
		}
	}
	f.seen[u.UID] = last
	f.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	pod := &corev1.Pod{}
	pod.Namespace, pod.Name, pod.UID = u.Namespace, u.Name, types.UID(u.UID)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, e := range fresh {
			_ = a.ReportEvent(ctx, pod, e.Type, e.Reason, e.Message)
		}
	}()
}

// ownContainerd is a containerd that `gantry up` started because none answered.
type ownContainerd struct {
	cmd    *exec.Cmd
	socket string
	done   chan struct{}
}

// containerdAnswers reports whether something accepts connections on socket.
func containerdAnswers(socket string) bool {
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// startOwnContainerd runs containerd as a child with a generated config under dir
// (own root, state and socket) and waits until its socket answers. Its own process
// group keeps a Ctrl-C at the terminal from reaching it before gantry stops.
func startOwnContainerd(dir string, log io.Writer) (*ownContainerd, error) {
	root, state := filepath.Join(dir, "root"), filepath.Join(dir, "state")
	socket := filepath.Join(dir, "c.sock")
	if len(socket) > 100 {
		return nil, fmt.Errorf("containerd socket path %s is too long for a unix socket; use a shorter --data-dir: %w", socket, api.ErrInvalidArgument)
	}
	for _, d := range []string{root, state} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("containerd dir: %w", err)
		}
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(executor.ContainerdConfig(root, state, socket)), 0o600); err != nil {
		return nil, fmt.Errorf("containerd config: %w", err)
	}
	cmd := exec.Command("containerd", "--config", cfg, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd (is it installed? make deps): %w", err)
	}
	c := &ownContainerd{cmd: cmd, socket: socket, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for !containerdAnswers(socket) {
		select {
		case <-c.done:
			return nil, fmt.Errorf("containerd exited at start (see its log above): %w", api.ErrUnavailable)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("containerd did not serve %s within 30s: %w", socket, api.ErrUnavailable)
		}
	}
	return c, nil
}

// Stop ends containerd (SIGTERM, then SIGKILL after 10 s). Containers keep running
// under their shims and are adopted by the next start.
func (c *ownContainerd) Stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

type upFlags struct {
	serverFlags
	containerd  string
	nodeName    string
	agentListen string
	namespace   string
	bridge      string
	cniBinDir   string
	imports     []string
	net         netFlags
}

func newUpCmd() *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run gantry on this machine: control plane, embedded etcd and a local agent",
		Long: `up runs everything on one machine: the control plane with an embedded etcd, and a
local agent whose pods run on containerd. If no containerd answers at
--containerd-address, up starts one as a child process with a config of its own under
DATA-DIR/containerd (own root, state and socket) and stops it on exit; a containerd it
did not start is left alone.

It prints the API address, the client config path and the command that joins more
nodes. SIGTERM or SIGINT stops gantry and leaves the pods running; the next up adopts
them without restarting them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext()
			defer stop()
			return runUp(ctx, f, cmd.ErrOrStderr())
		},
	}
	f.serverFlags.add(cmd, "/var/lib/gantry", controlplane.DefaultListen)
	fl := cmd.Flags()
	fl.StringVar(&f.containerd, "containerd-address", "/run/containerd/containerd.sock", "containerd socket; started as a child if nothing answers")
	host, _ := os.Hostname()
	fl.StringVar(&f.nodeName, "node-name", host, "name of the local node")
	fl.StringVar(&f.agentListen, "agent-listen", agentclient.DefaultListen, "listen address of the local agent's endpoint (logs, exec)")
	fl.StringVar(&f.namespace, "namespace", "gantry", "containerd namespace of gantry's containers")
	fl.StringVar(&f.bridge, "bridge", sandbox.DefaultBridge, "Linux bridge the pods are attached to")
	fl.StringVar(&f.cniBinDir, "cni-bin-dir", sandbox.DefaultCNIBinDir, "directory of the CNI plugins")
	fl.StringSliceVar(&f.imports, "import", nil, "OCI image archives to load into containerd at start (air-gapped nodes, demos)")
	f.net.add(cmd)
	return cmd
}

func runUp(ctx context.Context, f upFlags, stderr io.Writer) error {
	logger := serverLogger(stderr, slog.LevelWarn)
	if err := ensureDataDir(f.dataDir); err != nil {
		return err
	}
	socket := f.containerd
	ownDir := filepath.Join(f.dataDir, "containerd")
	switch {
	case containerdAnswers(socket):
	case containerdAnswers(filepath.Join(ownDir, "c.sock")):
		// A containerd started by an earlier up that was killed: it still runs the
		// pods, so use it (and leave it running, as this up did not start it).
		socket = filepath.Join(ownDir, "c.sock")
		fmt.Fprintf(stderr, "gantry: using the containerd an earlier gantry up left on %s\n", socket)
	default:
		own, err := startOwnContainerd(ownDir, stderr)
		if err != nil {
			return err
		}
		defer own.Stop()
		socket = own.socket
		fmt.Fprintf(stderr, "gantry: no containerd at %s; started one on %s\n", f.containerd, socket)
	}
	gate := make(chan struct{})
	cp, err := startControlPlane(ctx, f.serverFlags, logger, gate)
	if err != nil {
		return err
	}
	defer cp.Close()
	agent, err := startNodeAgent(ctx, nodeAgentConfig{
		server: cp.server.URL(), joinToken: cp.server.JoinToken().String(), nodeName: f.nodeName,
		dataDir: f.dataDir, containerd: socket, namespace: f.namespace, listen: f.agentListen,
		bridge: f.bridge, cniBinDir: f.cniBinDir, logger: logger,
		serviceTable: f.net.serviceTable, dnsUpstreams: f.net.dnsUpstreams,
		clusterCIDRs: []string{f.cidrV4, f.cidrV6},
	})
	if err != nil {
		return err
	}
	defer agent.Close()
	for _, archive := range f.imports {
		names, err := agent.exec.ImportArchive(ctx, archive)
		if err != nil {
			return fmt.Errorf("--import %s: %w", archive, err)
		}
		fmt.Fprintf(stderr, "gantry: imported %v from %s\n", names, archive)
	}
	close(gate) // images are in: the reconcile loop may place pods now
	printServerInfo(stderr, cp.server)
	printGitInfo(stderr, f.git)
	fmt.Fprintf(stderr, "gantry: local node %s runs pods on containerd %s (pod CIDRs %v)\n", agent.creds.NodeName, socket, agent.creds.PodCIDRs)
	<-ctx.Done()
	fmt.Fprintln(stderr, "gantry: stopping; pods keep running and are adopted by the next start")
	return nil
}
