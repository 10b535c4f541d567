package agentclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"gantry.io/gantry/api"
	"gantry.io/gantry/netsvc"
)

// NetworkPath is the agents' network feed: GET returns one Network as JSON;
// with ?watch=true the answer is a stream of newline-delimited Networks, the
// current one first and then one after every change, with an empty line as a
// keep-alive every NetworkKeepAlive while nothing changes.
const NetworkPath = api.APIPrefix + "/network"

// NetworkKeepAlive is how often the server writes an empty line on an idle network
// stream. A client that hears nothing for three times as long reconnects.
const NetworkKeepAlive = 15 * time.Second

// DefaultClusterDomain is the DNS domain of the cluster's service names.
const DefaultClusterDomain = "cluster.local"

// Network is what an agent needs to program service VIPs, DNS and pod routes.
type Network struct {
	// Revision changes whenever anything below changes. It is a hash of the
	// content, not a counter: compare it for equality only.
	Revision int64
	// Services is every Service with its VIPs/NodePorts and its endpoints (all
	// namespaces). Endpoints include the ready and the not-ready ones: only
	// Serving endpoints get traffic (netsvc ignores the others).
	Services netsvc.State
	// Nodes is every node: name, pod CIDRs and node addresses (for host-gw
	// routes), sorted by name.
	Nodes []netsvc.Node
	// ClusterDomain is the DNS domain of service names. Default "cluster.local".
	ClusterDomain string
	// DNSServiceIPs are VIPs of a DNS Service, if any. gantry reserves none: each
	// agent serves DNS on its node's bridge gateway addresses, so this is empty.
	DNSServiceIPs []netip.Addr
}

// networkJSON is the wire form of a Network: netsvc.State's map keyed by a struct
// does not encode as JSON, so services travel as a list with their endpoints.
type networkJSON struct {
	Revision      int64         `json:"revision"`
	Services      []serviceJSON `json:"services"`
	Nodes         []netsvc.Node `json:"nodes"`
	ClusterDomain string        `json:"clusterDomain"`
	DNSServiceIPs []netip.Addr  `json:"dnsServiceIPs,omitempty"`
}

type serviceJSON struct {
	netsvc.Service
	Endpoints []netsvc.Endpoint `json:"Endpoints,omitempty"`
}

// MarshalJSON encodes the network with its services sorted by namespace/name.
func (n Network) MarshalJSON() ([]byte, error) {
	svcs := append([]netsvc.Service(nil), n.Services.Services...)
	sort.Slice(svcs, func(i, j int) bool {
		a, b := svcs[i].Key(), svcs[j].Key()
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	parts := make([][]byte, 0, len(svcs))
	for _, s := range svcs {
		b, err := EncodeNetworkService(s, n.Services.Endpoints[s.Key()])
		if err != nil {
			return nil, err
		}
		parts = append(parts, b)
	}
	return AssembleNetwork(n.Revision, parts, n.Nodes, n.ClusterDomain, n.DNSServiceIPs)
}

// EncodeNetworkService is the wire form of one service and its endpoints inside
// a Network, for a server that keeps the parts of unchanged services encoded
// (AssembleNetwork puts them together).
func EncodeNetworkService(s netsvc.Service, eps []netsvc.Endpoint) ([]byte, error) {
	b, err := json.Marshal(serviceJSON{Service: s, Endpoints: eps})
	if err != nil {
		return nil, fmt.Errorf("encode service %s: %w", s.Key(), err)
	}
	return b, nil
}

// AssembleNetwork is the wire form of a Network from its services' parts
// (EncodeNetworkService, in namespace/name order), nodes, domain and DNS VIPs.
// The output starts with `{"revision":<revision>,`.
func AssembleNetwork(revision int64, services [][]byte, nodes []netsvc.Node, domain string, dns []netip.Addr) ([]byte, error) {
	if nodes == nil {
		nodes = []netsvc.Node{}
	}
	nb, err := json.Marshal(nodes)
	if err != nil {
		return nil, fmt.Errorf("encode nodes: %w", err)
	}
	db, _ := json.Marshal(domain)
	size := 64 + len(nb) + len(db)
	for _, p := range services {
		size += len(p) + 1
	}
	out := make([]byte, 0, size)
	out = append(out, `{"revision":`...)
	out = strconv.AppendInt(out, revision, 10)
	out = append(out, `,"services":[`...)
	for i, p := range services {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, p...)
	}
	out = append(out, `],"nodes":`...)
	out = append(out, nb...)
	out = append(out, `,"clusterDomain":`...)
	out = append(out, db...)
	if len(dns) > 0 {
		b, err := json.Marshal(dns)
		if err != nil {
			return nil, fmt.Errorf("encode DNS VIPs: %w", err)
		}
		out = append(out, `,"dnsServiceIPs":`...)
		out = append(out, b...)
	}
	return append(out, '}'), nil
}

// UnmarshalJSON decodes the wire form. A missing cluster domain becomes
// DefaultClusterDomain.
func (n *Network) UnmarshalJSON(b []byte) error {
	var w networkJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	out := Network{Revision: w.Revision, Nodes: w.Nodes, ClusterDomain: w.ClusterDomain, DNSServiceIPs: w.DNSServiceIPs}
	if out.ClusterDomain == "" {
		out.ClusterDomain = DefaultClusterDomain
	}
	out.Services.Endpoints = map[netsvc.ServiceKey][]netsvc.Endpoint{}
	for _, s := range w.Services {
		out.Services.Services = append(out.Services.Services, s.Service)
		if len(s.Endpoints) > 0 {
			out.Services.Endpoints[s.Key()] = s.Endpoints
		}
	}
	*n = out
	return nil
}

// WatchNetwork calls fn with the full Network now and after every change, until
// ctx ends. Changes that arrive while fn runs are coalesced: fn then gets the
// newest Network once. It reconnects with back-off (200 ms doubling to 10 s) while
// the server is unreachable, and never calls fn concurrently or twice in a row with
// the same Revision. Call it after Start; before Start it returns at once.
func (a *Agent) WatchNetwork(ctx context.Context, fn func(Network)) {
	if a.cli == nil {
		a.o.logger.Error("WatchNetwork called before Start")
		return
	}
	var (
		mu     sync.Mutex
		latest *Network
		ready  = make(chan struct{}, 1)
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := newBackoff()
		for ctx.Err() == nil {
			err := a.streamNetwork(ctx, func(n Network) {
				b.reset()
				mu.Lock()
				latest = &n
				mu.Unlock()
				select {
				case ready <- struct{}{}:
				default:
				}
			})
			if ctx.Err() != nil {
				return
			}
			a.o.logger.Warn("network feed", "err", err)
			sleep(ctx, b.next())
		}
	}()
	var last int64
	delivered := false
	for {
		select {
		case <-ctx.Done():
			<-done
			return
		case <-ready:
		}
		mu.Lock()
		n := latest
		latest = nil
		mu.Unlock()
		if n == nil || delivered && n.Revision == last {
			continue
		}
		fn(*n)
		last, delivered = n.Revision, true
	}
}

// FetchNetwork returns the current Network once (no watch).
func (a *Agent) FetchNetwork(ctx context.Context) (Network, error) {
	if a.cli == nil {
		return Network{}, fmt.Errorf("network feed: agent not started: %w", api.ErrFailedPrecondition)
	}
	var n Network
	if err := a.cli.Do(ctx, http.MethodGet, NetworkPath, nil, &n); err != nil {
		return Network{}, fmt.Errorf("network feed: %w", err)
	}
	return n, nil
}

// streamNetwork reads one watch stream, calling got for every Network, until the
// stream ends (error), stays silent for 3×NetworkKeepAlive, or ctx ends.
func (a *Agent) streamNetwork(ctx context.Context, got func(Network)) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := a.cli.Stream(sctx, http.MethodGet, NetworkPath+"?watch=true", nil)
	if err != nil {
		return fmt.Errorf("network feed: %w", err)
	}
	defer resp.Body.Close()
	// A silent server (half-open connection) is noticed by a watchdog that cancels
	// the request, which unblocks the read below.
	alive := make(chan struct{}, 1)
	go func() {
		t := time.NewTimer(3 * NetworkKeepAlive)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-alive:
				t.Reset(3 * NetworkKeepAlive)
			case <-t.C:
				cancel()
				return
			}
		}
	}()
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			if ctx.Err() == nil && sctx.Err() != nil {
				return fmt.Errorf("network feed: no data for %s: %w", 3*NetworkKeepAlive, api.ErrUnavailable)
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("network feed: server ended the stream: %w", api.ErrUnavailable)
			}
			return fmt.Errorf("network feed: %w", err)
		}
		select {
		case alive <- struct{}{}:
		default:
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue // keep-alive
		}
		var n Network
		if err := json.Unmarshal(line, &n); err != nil {
			return fmt.Errorf("network feed: bad message: %w", err)
		}
		got(n)
	}
}
