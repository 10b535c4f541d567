package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"gantry.io/gantry/controlplane"
)

// runJoinedAgent is `gantry agent --server URL`: it joins the control plane (once; the
// node certificate is kept under --data-dir/agent), runs the pods bound to this node
// and reports their status until ctx is done. Stopping leaves the pods running; the
// next start adopts them.
func runJoinedAgent(ctx context.Context, f agentFlags, stderr io.Writer) error {
	name := f.nodeName
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("agent: node name: %w (set --node-name)", err)
		}
		name = h
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	n, err := startNodeAgent(ctx, nodeAgentConfig{
		server:     f.server,
		joinToken:  f.joinToken,
		nodeName:   name,
		dataDir:    f.dataDir,
		containerd: f.address,
		namespace:  f.namespace,
		listen:     f.listen,
		bridge:     f.bridge,
		cniBinDir:  f.cniBinDir,
		logger:     logger,

		serviceTable: f.net.serviceTable,
		dnsUpstreams: f.net.dnsUpstreams,
		clusterCIDRs: f.joinedNoMasq(),
	})
	if err != nil {
		return fmt.Errorf("agent: join %s as node %q: %w", f.server, name, err)
	}
	fmt.Fprintf(stderr, "agent: node %q joined %s; running its pods (SIGTERM stops the agent and leaves them running)\n", n.creds.NodeName, f.server)
	<-ctx.Done()
	n.Close()
	return nil
}

// joinedNoMasq is what a joined agent leaves unmasqueraded: --non-masquerade-cidr,
// or by default the server's default cluster CIDRs (pods on other nodes see the
// client pod's own address).
func (f agentFlags) joinedNoMasq() []string {
	if len(f.noMasq) > 0 {
		return f.noMasq
	}
	return []string{controlplane.DefaultClusterCIDRv4, controlplane.DefaultClusterCIDRv6}
}
