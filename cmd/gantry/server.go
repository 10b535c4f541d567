package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/netsvc/ipalloc"
	"gantry.io/gantry/secrets"
	"gantry.io/gantry/store"
	gitsync "gantry.io/gantry/sync"
)

func init() { register(newServerCmd) }

// serverFlags configure the control plane, for `gantry server` and `gantry up`.
type serverFlags struct {
	dataDir       string
	listen        string
	sans          []string
	etcdEndpoints []string
	etcdCA        string
	etcdCert      string
	etcdKey       string
	cidrV4        string
	cidrV6        string
	maskV4        int
	maskV6        int
	grace         time.Duration
	svcCIDRv4     string
	svcCIDRv6     string
	nodePorts     string
	clusterDomain string
	clientConfig  string
	// vaultCredentialsDir holds the server-side credentials of SecretStores
	// (secrets.CredentialsFromDir); "" is DATA-DIR/credentials.
	vaultCredentialsDir string
	git                 gitFlags
}

func (f *serverFlags) add(cmd *cobra.Command, defaultDataDir, defaultListen string) {
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", defaultDataDir, "state: CA, tokens, client config, embedded etcd")
	fl.StringVar(&f.listen, "listen", defaultListen, "HTTPS listen address of the API")
	fl.StringSliceVar(&f.sans, "san", nil, "extra subject alternative names (IPs, DNS names) of the server certificate")
	fl.StringSliceVar(&f.etcdEndpoints, "etcd-endpoints", nil, "external etcd cluster (default: an embedded etcd in DATA-DIR/etcd)")
	fl.StringVar(&f.etcdCA, "etcd-cafile", "", "CA of the external etcd's certificates")
	fl.StringVar(&f.etcdCert, "etcd-certfile", "", "client certificate for the external etcd")
	fl.StringVar(&f.etcdKey, "etcd-keyfile", "", "client key for the external etcd")
	fl.StringVar(&f.cidrV4, "cluster-cidr-v4", controlplane.DefaultClusterCIDRv4, "IPv4 range node pod CIDRs are cut from (\"\" for none)")
	fl.StringVar(&f.cidrV6, "cluster-cidr-v6", controlplane.DefaultClusterCIDRv6, "IPv6 range node pod CIDRs are cut from (\"\" for none)")
	fl.IntVar(&f.maskV4, "node-cidr-mask-v4", controlplane.DefaultNodeMaskV4, "prefix length of a node's IPv4 pod CIDR")
	fl.IntVar(&f.maskV6, "node-cidr-mask-v6", controlplane.DefaultNodeMaskV6, "prefix length of a node's IPv6 pod CIDR")
	fl.DurationVar(&f.grace, "node-grace-period", controlplane.DefaultNodeGracePeriod, "missing heartbeats for this long make a node NotReady")
	fl.StringVar(&f.svcCIDRv4, "service-cidr-v4", ipalloc.DefaultServiceCIDRv4.String(), "IPv4 range of service VIPs (\"\" for none)")
	fl.StringVar(&f.svcCIDRv6, "service-cidr-v6", ipalloc.DefaultServiceCIDRv6.String(), "IPv6 range of service VIPs (\"\" for none)")
	fl.StringVar(&f.nodePorts, "service-node-port-range", fmt.Sprintf("%d-%d", ipalloc.DefaultNodePortMin, ipalloc.DefaultNodePortMax), "range of NodePorts, MIN-MAX")
	fl.StringVar(&f.clusterDomain, "cluster-domain", "cluster.local", "DNS domain of service names (<svc>.<ns>.svc.DOMAIN)")
	fl.StringVar(&f.clientConfig, "client-config", "", "where to write the admin client config (default $GANTRY_CONFIG or ~/.config/gantry/config)")
	fl.StringVar(&f.vaultCredentialsDir, "vault-credentials-dir", "", "Vault credentials of the SecretStores: a tokenSecretRef/secretRef/roleRef {name, key} in namespace NS is the file DIR/NS/NAME/KEY, unless $GANTRY_CREDENTIAL_NS_NAME_KEY is set (default DATA-DIR/credentials; see docs/SECRETS.md)")
	f.git.add(cmd)
}

// controlPlane is a running store and API server; Close stops both.
type controlPlane struct {
	etcd   *store.Embedded
	cli    *clientv3.Client
	server *controlplane.Server
	syncer *gitsync.Syncer
	// The secrets cache refreshing ExternalSecrets from Vault (with --repo).
	resolver    *secrets.Resolver
	stopSecrets context.CancelFunc
}

func (cp *controlPlane) Close() {
	if cp.server != nil {
		cp.server.Close()
	}
	if cp.stopSecrets != nil {
		cp.stopSecrets()
	}
	if cp.resolver != nil {
		_ = cp.resolver.Close()
	}
	if cp.syncer != nil {
		cp.syncer.Close()
	}
	if cp.cli != nil {
		cp.cli.Close()
	}
	if cp.etcd != nil {
		cp.etcd.Close()
	}
}

// startControlPlane starts the embedded etcd (unless external endpoints are given)
// and the API server. On error everything started is stopped.
//
// With --repo it also follows the git repository and runs the reconcile loop; the
// loop waits until gate is closed (nil: at once), so `gantry up` can import images
// before the first pods are placed.
func startControlPlane(ctx context.Context, f serverFlags, logger *slog.Logger, gate <-chan struct{}) (*controlPlane, error) {
	cp := &controlPlane{}
	ok := false
	defer func() {
		if !ok {
			cp.Close()
		}
	}()
	if err := ensureDataDir(f.dataDir); err != nil {
		return nil, err
	}
	var err error
	if len(f.etcdEndpoints) == 0 {
		cp.etcd = store.NewEmbedded(filepath.Join(f.dataDir, "etcd"), store.WithClientURL("unix://"+filepath.Join(f.dataDir, "etcd.sock")))
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = cp.etcd.Start(sctx)
		cancel()
		if err != nil {
			return nil, err
		}
		cp.cli, err = cp.etcd.Client()
	} else {
		cp.cli, err = store.Connect(ctx, store.ClientConfig{Endpoints: f.etcdEndpoints, CAFile: f.etcdCA, CertFile: f.etcdCert, KeyFile: f.etcdKey})
	}
	if err != nil {
		return nil, err
	}
	svcNet, err := f.serviceNetwork()
	if err != nil {
		return nil, err
	}
	opts := []controlplane.Option{
		controlplane.WithServiceNetwork(svcNet),
		controlplane.WithClusterDomain(f.clusterDomain),
		controlplane.WithDataDir(f.dataDir),
		controlplane.WithListen(f.listen),
		controlplane.WithSANs(f.sans...),
		controlplane.WithClusterCIDRs(f.cidrV4, f.maskV4, f.cidrV6, f.maskV6),
		controlplane.WithNodeGracePeriod(f.grace),
		controlplane.WithLogger(logger),
	}
	if f.clientConfig != "" {
		opts = append(opts, controlplane.WithClientConfigPath(f.clientConfig))
	}
	st := store.New(cp.cli)
	if f.git.repo != "" {
		// ExternalSecrets are resolved from Vault into this process's memory: one
		// Resolver (a Vault client per store) and a Cache refreshing every
		// refreshInterval; a changed value re-hashes the Deployments that use it
		// (they roll), and the material endpoint hands the values to the pods' nodes.
		cp.resolver = secrets.New(
			secrets.WithCredentials(secrets.ServerCredentials(f.credentialsDir())),
			secrets.WithLogger(logger),
			secrets.WithRedactor(logRedactor))
		cache := secrets.NewCache(cp.resolver)
		rec, syncer, err := f.git.reconciler(st, f.dataDir, logger, gate, cache)
		if err != nil {
			return nil, err
		}
		cp.syncer = syncer
		sctx, cancel := context.WithCancel(ctx)
		cp.stopSecrets = cancel
		go cache.Run(sctx, rec.OnSecretReport)
		opts = append(opts, controlplane.WithReconciler(rec),
			controlplane.WithMaterialSource(controlplane.NewDesiredMaterial(rec.Desired, cache, cp.resolver.Redactor())))
	}
	cp.server = controlplane.New(st, opts...)
	if err := cp.server.Start(ctx); err != nil {
		return nil, err
	}
	ok = true
	return cp, nil
}

// credentialsDir is --vault-credentials-dir, default DATA-DIR/credentials.
func (f *serverFlags) credentialsDir() string {
	if f.vaultCredentialsDir != "" {
		return f.vaultCredentialsDir
	}
	return filepath.Join(f.dataDir, "credentials")
}

// logRedactor knows every secret value and Vault credential this process has
// resolved; the server's log output passes through it (serverLogger), and so do the
// texts the material endpoint sends. One per process: values stay in it after they
// are rotated out.
var logRedactor = secrets.NewRedactor()

// serverLogger is the logger of `gantry server` and `gantry up`: text records on w at
// level, with every known secret value and credential replaced by [redacted].
func serverLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(logRedactor.Writer(w), &slog.HandlerOptions{Level: level}))
}

// serviceNetwork parses the service flags into the allocator's ranges; an empty
// CIDR turns its family off.
func (f *serverFlags) serviceNetwork() (ipalloc.Config, error) {
	var c ipalloc.Config
	for _, fam := range []struct {
		flag, val string
		pfx       *netip.Prefix
		off       *bool
	}{{"--service-cidr-v4", f.svcCIDRv4, &c.ServiceCIDRv4, &c.DisableIPv4}, {"--service-cidr-v6", f.svcCIDRv6, &c.ServiceCIDRv6, &c.DisableIPv6}} {
		if fam.val == "" {
			*fam.off = true
			continue
		}
		p, err := netip.ParsePrefix(fam.val)
		if err != nil {
			return c, fmt.Errorf("%s %q: %v: %w", fam.flag, fam.val, err, api.ErrInvalidArgument)
		}
		*fam.pfx = p.Masked()
	}
	if c.DisableIPv4 && c.DisableIPv6 {
		return c, fmt.Errorf("--service-cidr-v4 and --service-cidr-v6 are both empty: services need at least one family: %w", api.ErrInvalidArgument)
	}
	lo, hi, ok := strings.Cut(f.nodePorts, "-")
	minP, err1 := strconv.ParseUint(lo, 10, 16)
	maxP, err2 := strconv.ParseUint(hi, 10, 16)
	if !ok || err1 != nil || err2 != nil || minP == 0 || minP > maxP {
		return c, fmt.Errorf("--service-node-port-range %q: want MIN-MAX with 1 <= MIN <= MAX <= 65535: %w", f.nodePorts, api.ErrInvalidArgument)
	}
	c.NodePortMin, c.NodePortMax = int32(minP), int32(maxP)
	return c, nil
}

// ensureDataDir fails early, naming the directory, when it cannot be created or
// written.
func ensureDataDir(dir string) error {
	if dir == "" {
		return fmt.Errorf("--data-dir is empty")
	}
	return store.CheckWritableDir(dir)
}

func printServerInfo(w io.Writer, s *controlplane.Server) {
	fmt.Fprintf(w, "gantry: API on %s\n", s.URL())
	fmt.Fprintf(w, "gantry: client config written to %s (the CLI reads it; set GANTRY_CONFIG to use another)\n", s.ClientConfigPath())
	host := strings.TrimPrefix(s.URL(), "https://")
	fmt.Fprintf(w, "gantry: join a node with:\n  gantry agent --server https://%s --join-token %s\n", host, s.JoinToken())
}

func newServerCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (API, store, node lifecycle) without a local agent",
		Long: `server runs gantry's control plane: the HTTPS API with its own CA (made at first
start under --data-dir), the store on an embedded etcd or, with --etcd-endpoints, an
external etcd cluster (several servers on one etcd elect a leader for the node
lifecycle), and agent join. At start it prints the API address, the client config path
and the command that joins a node. SIGTERM or SIGINT stops it; agents keep their
pods running and reconnect when it is back.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext()
			defer stop()
			logger := serverLogger(cmd.ErrOrStderr(), slog.LevelInfo)
			cp, err := startControlPlane(ctx, f, logger, nil)
			if err != nil {
				return err
			}
			defer cp.Close()
			printServerInfo(cmd.ErrOrStderr(), cp.server)
			printGitInfo(cmd.ErrOrStderr(), f.git)
			<-ctx.Done()
			fmt.Fprintln(cmd.ErrOrStderr(), "gantry: stopping the server")
			return nil
		},
	}
	f.add(cmd, "/var/lib/gantry", controlplane.DefaultListen)
	return cmd
}
