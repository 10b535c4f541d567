package executor

import (
	"log/slog"
	"path/filepath"
	"time"

	"gantry.io/gantry/executor/backoff"
	"gantry.io/gantry/executor/sandbox"
)

// Option configures an Executor; see New for the defaults.
type Option func(*options)

type options struct {
	address      string
	namespace    string
	dataDir      string
	sandbox      *sandbox.Manager
	backoff      backoff.Policy
	registry     RegistryConfig
	maxParallel  int
	sink         func(PodStatusUpdate)
	logger       *slog.Logger
	snapshotter  string
	nodeName     string
	sampleEvery  time.Duration
	logMaxSize   int64
	logMaxFiles  int
	resyncPeriod time.Duration
}

// WithAddress sets containerd's gRPC socket. Default /run/containerd/containerd.sock.
func WithAddress(socket string) Option { return func(o *options) { o.address = socket } }

// WithNamespace sets the containerd namespace gantry's containers live in. Default "gantry".
func WithNamespace(ns string) Option { return func(o *options) { o.namespace = ns } }

// WithDataDir sets the directory for pod state (volumes, logs, FIFOs). Default
// /var/lib/gantry/executor.
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithSandbox sets the network sandbox manager (netns + CNI). Default: a manager with its
// own defaults and its data under <data dir>/sandbox.
func WithSandbox(m *sandbox.Manager) Option { return func(o *options) { o.sandbox = m } }

// WithBackoff sets the restart and image-pull back-off (see package backoff: the first
// restart is immediate, then Initial doubling to Max, reset after ResetAfter of
// running). Default backoff.DefaultPolicy(): 10 s doubling to 5 min, reset after 10 min.
func WithBackoff(p backoff.Policy) Option { return func(o *options) { o.backoff = p } }

// WithRegistryConfig sets how images are pulled: which hosts speak plain HTTP and which
// credentials to present. 127.0.0.1, ::1 and localhost always use plain HTTP.
func WithRegistryConfig(rc RegistryConfig) Option { return func(o *options) { o.registry = rc } }

// WithMaxParallel bounds how many pods pull, create or stop containers at once. Default 4.
func WithMaxParallel(n int) Option { return func(o *options) { o.maxParallel = n } }

// WithStatusSink registers a function called (from executor goroutines, never
// concurrently for one pod) whenever a pod's status changes, and once with Deleted set
// when a pod is gone. It must not block for long.
func WithStatusSink(f func(PodStatusUpdate)) Option { return func(o *options) { o.sink = f } }

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithNodeName sets spec.nodeName reported in status and resolvable with the downward
// API (fieldRef spec.nodeName). Default: the host name.
func WithNodeName(n string) Option { return func(o *options) { o.nodeName = n } }

// WithMetricsInterval sets how often container metrics are sampled. Default 10 s.
func WithMetricsInterval(d time.Duration) Option { return func(o *options) { o.sampleEvery = d } }

// WithLogRotation sets the size at which a container log file rotates and how many
// rotated files are kept. Default 10 MiB and 3.
func WithLogRotation(maxBytes int64, maxFiles int) Option {
	return func(o *options) { o.logMaxSize, o.logMaxFiles = maxBytes, maxFiles }
}

func (o *options) applyDefaults() {
	if o.address == "" {
		o.address = "/run/containerd/containerd.sock"
	}
	if o.namespace == "" {
		o.namespace = "gantry"
	}
	if o.dataDir == "" {
		o.dataDir = "/var/lib/gantry/executor"
	}
	if o.sandbox == nil {
		o.sandbox = sandbox.New(sandbox.WithDataDir(filepath.Join(o.dataDir, "sandbox")))
	}
	if o.backoff == (backoff.Policy{}) {
		o.backoff = backoff.DefaultPolicy()
	}
	if o.maxParallel <= 0 {
		o.maxParallel = 4
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.snapshotter == "" {
		o.snapshotter = "overlayfs"
	}
	if o.sampleEvery <= 0 {
		o.sampleEvery = 10 * time.Second
	}
	if o.logMaxSize <= 0 {
		o.logMaxSize = 10 << 20
	}
	if o.logMaxFiles <= 0 {
		o.logMaxFiles = 3
	}
	if o.resyncPeriod <= 0 {
		o.resyncPeriod = time.Second
	}
}
