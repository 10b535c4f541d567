package netsvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"gantry.io/gantry/api"
)

// DNS defaults.
const (
	DefaultClusterDomain = "cluster.local"
	// DefaultRecordTTL is the TTL of cluster records, in seconds: short, because
	// endpoints change (the value CoreDNS's kubernetes plugin uses).
	DefaultRecordTTL = 5
	// DefaultCacheSize bounds the forwarding cache, in answers.
	DefaultCacheSize = 10000
	// DefaultUpstreamTimeout bounds one exchange with one upstream.
	DefaultUpstreamTimeout = 2 * time.Second
	// maxCacheTTL caps how long a forwarded answer is cached, whatever its TTL.
	maxCacheTTL = time.Hour
)

// DNS answers for the cluster domain from the records of the last Update and
// forwards every other name to upstream resolvers, caching their answers for as
// long as their TTLs allow. Create it with NewDNS, then Start; Close is safe after a
// partial Start.
type DNS struct {
	listen    []string
	domain    string
	upstreams []string
	// upstreamsSet: WithUpstreams was given, even empty; no resolv.conf default.
	upstreamsSet bool
	ttl          uint32
	cacheSize    int
	timeout      time.Duration
	freeBind     bool
	now          func() time.Time

	zone  atomic.Pointer[zone]
	cache *answerCache

	mu      sync.Mutex
	servers []*dns.Server
	// udpServers serve the UDP sockets of specific addresses (dnsudp.go); those of
	// unspecified addresses are among servers.
	udpServers []*udpServer
	udp        []net.Addr
	tcp        []net.Addr
}

// DNSOption configures a DNS server.
type DNSOption func(*DNS)

// WithListen sets the addresses to serve on, each "host:port", over UDP and TCP.
// Port 0 picks a free port, the same for UDP and TCP. Required.
func WithListen(addrs ...string) DNSOption {
	return func(d *DNS) { d.listen = append(d.listen, addrs...) }
}

// WithClusterDomain sets the cluster domain. Default DefaultClusterDomain.
func WithClusterDomain(domain string) DNSOption { return func(d *DNS) { d.domain = domain } }

// WithUpstreams sets the resolvers ("host:port"; a bare host means port 53) that
// other names are forwarded to, tried in order. WithUpstreams() with no address
// disables forwarding (SERVFAIL for other names). Default: the nameservers of the
// host's /etc/resolv.conf, read by NewDNS.
func WithUpstreams(addrs ...string) DNSOption {
	return func(d *DNS) { d.upstreams, d.upstreamsSet = append(d.upstreams, addrs...), true }
}

// WithRecordTTL sets the TTL of cluster records in seconds. Default DefaultRecordTTL.
func WithRecordTTL(seconds uint32) DNSOption { return func(d *DNS) { d.ttl = seconds } }

// WithCacheSize bounds the forwarding cache; 0 disables it. Default DefaultCacheSize.
func WithCacheSize(n int) DNSOption { return func(d *DNS) { d.cacheSize = n } }

// WithUpstreamTimeout bounds one upstream exchange. Default DefaultUpstreamTimeout.
func WithUpstreamTimeout(t time.Duration) DNSOption { return func(d *DNS) { d.timeout = t } }

// WithFreeBind lets Start bind listen addresses that no interface holds yet
// (IP_FREEBIND / IPV6_FREEBIND): the agent's DNS listens on the pod bridge's gateway
// addresses, which the CNI bridge plugin assigns only when the node's first pod is set
// up. Queries are answered as soon as the address appears. Default off.
func WithFreeBind() DNSOption { return func(d *DNS) { d.freeBind = true } }

// NewDNS validates the options; it opens nothing. Returns api.ErrInvalidArgument
// without listen addresses or with a malformed address or domain.
func NewDNS(opts ...DNSOption) (*DNS, error) {
	d := &DNS{ttl: DefaultRecordTTL, cacheSize: DefaultCacheSize, timeout: DefaultUpstreamTimeout, now: time.Now}
	for _, o := range opts {
		o(d)
	}
	if d.domain == "" {
		d.domain = DefaultClusterDomain
	}
	if _, ok := dns.IsDomainName(d.domain); !ok {
		return nil, fmt.Errorf("cluster domain %q is not a domain name: %w", d.domain, api.ErrInvalidArgument)
	}
	if len(d.listen) == 0 {
		return nil, fmt.Errorf("DNS server needs at least one listen address: %w", api.ErrInvalidArgument)
	}
	for _, a := range d.listen {
		if _, err := netip.ParseAddrPort(a); err != nil {
			return nil, fmt.Errorf("DNS listen address %q: %v: %w", a, err, api.ErrInvalidArgument)
		}
	}
	if !d.upstreamsSet {
		if cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf"); err == nil {
			for _, s := range cfg.Servers {
				d.upstreams = append(d.upstreams, net.JoinHostPort(s, cfg.Port))
			}
		}
	}
	for i, u := range d.upstreams {
		if _, err := netip.ParseAddrPort(u); err != nil {
			if _, err := netip.ParseAddr(u); err != nil {
				return nil, fmt.Errorf("DNS upstream %q is not an IP or IP:port: %w", u, api.ErrInvalidArgument)
			}
			d.upstreams[i] = net.JoinHostPort(u, "53")
		}
	}
	d.cache = newAnswerCache(d.cacheSize)
	d.zone.Store(buildZone(State{}, d.domain))
	return d, nil
}

// Start binds every listen address over UDP and TCP and serves until Close. It
// returns once all listeners are bound, or the first bind error (after releasing
// what it bound).
func (d *DNS) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.servers) > 0 {
		return fmt.Errorf("DNS server already started: %w", api.ErrFailedPrecondition)
	}
	for _, a := range d.listen {
		pc, l, err := listenBoth(ctx, a, d.freeBind)
		if err != nil {
			d.closeLocked()
			return fmt.Errorf("DNS listen on %s: %w", a, err)
		}
		d.udp, d.tcp = append(d.udp, pc.LocalAddr()), append(d.tcp, l.Addr())
		servers := []*dns.Server{{Listener: l, Handler: d}}
		if netip.MustParseAddrPort(a).Addr().IsUnspecified() {
			servers = append(servers, &dns.Server{PacketConn: pc, Handler: d})
		} else {
			d.udpServers = append(d.udpServers, d.serveUDP(pc))
		}
		for _, s := range servers {
			started := make(chan struct{})
			s.NotifyStartedFunc = func() { close(started) }
			d.servers = append(d.servers, s)
			go func() { _ = s.ActivateAndServe() }()
			<-started
		}
	}
	return nil
}

// listenBoth binds UDP then TCP on the same port (retrying a few free ports when
// the port is 0 and TCP's is taken); freeBind sets IP(V6)_FREEBIND on both sockets.
func listenBoth(ctx context.Context, addr string, freeBind bool) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	ap := netip.MustParseAddrPort(addr)
	if freeBind {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				if ap.Addr().Is4() {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
				} else {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
				}
			})
			if err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("set freebind: %w", serr)
			}
			return nil
		}
	}
	for attempt := 0; ; attempt++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := lc.Listen(ctx, "tcp", netip.AddrPortFrom(ap.Addr(), uint16(port)).String())
		if err == nil {
			return pc, l, nil
		}
		_ = pc.Close()
		if ap.Port() != 0 || attempt == 10 {
			return nil, nil, err
		}
	}
}

// UDPAddrs and TCPAddrs return the bound addresses, in WithListen order.
func (d *DNS) UDPAddrs() []net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]net.Addr(nil), d.udp...)
}

// TCPAddrs returns the bound TCP addresses, in WithListen order.
func (d *DNS) TCPAddrs() []net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]net.Addr(nil), d.tcp...)
}

// Update replaces the cluster records with those of st, atomically: a query sees
// the old records or the new, never a mix.
func (d *DNS) Update(st State) { d.zone.Store(buildZone(st, d.domain)) }

// Close stops serving and releases the listeners. Safe to call twice and after a
// failed Start.
func (d *DNS) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closeLocked()
}

func (d *DNS) closeLocked() error {
	var errs []error
	for _, s := range d.servers {
		if err := s.Shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range d.udpServers {
		if err := s.close(); err != nil {
			errs = append(errs, err)
		}
	}
	d.servers, d.udpServers, d.udp, d.tcp = nil, nil, nil, nil
	return errors.Join(errs...)
}

// ServeDNS answers one query: cluster names (and PTRs of known VIPs and pod IPs)
// from the zone, the rest through the upstreams. It serves TCP, and UDP on
// unspecified addresses; other UDP sockets are served by dnsudp.go.
func (d *DNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := d.answerLocal(r)
	if m == nil {
		m = d.forward(r, w.RemoteAddr().Network())
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		truncateUDP(r, m)
	}
	_ = w.WriteMsg(m)
}

// answerLocal answers r from the zone (FORMERR unless r is a query with one
// question), or returns nil when r's name is to be forwarded.
func (d *DNS) answerLocal(r *dns.Msg) *dns.Msg {
	if len(r.Question) != 1 || r.Opcode != dns.OpcodeQuery {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeFormatError)
		return m
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	z := d.zone.Load()
	switch {
	case q.Qclass == dns.ClassINET && dns.IsSubDomain(z.domain, name):
		return d.answerCluster(r, z, name, q.Qtype)
	case q.Qclass == dns.ClassINET && q.Qtype == dns.TypePTR && z.ptr[name] != nil:
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		for _, target := range z.ptr[name] {
			m.Answer = append(m.Answer, &dns.PTR{Hdr: d.hdr(q.Name, dns.TypePTR), Ptr: target})
		}
		return m
	}
	return nil
}

func (d *DNS) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: d.ttl}
}

func (d *DNS) answerCluster(r *dns.Msg, z *zone, name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	qname := r.Question[0].Name
	n := z.names[name]
	if n == nil {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{d.soa(z)}
		return m
	}
	if qtype == dns.TypeA || qtype == dns.TypeANY {
		for _, ip := range n.a {
			m.Answer = append(m.Answer, &dns.A{Hdr: d.hdr(qname, dns.TypeA), A: ip.AsSlice()})
		}
	}
	if qtype == dns.TypeAAAA || qtype == dns.TypeANY {
		for _, ip := range n.aaaa {
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: d.hdr(qname, dns.TypeAAAA), AAAA: ip.AsSlice()})
		}
	}
	if qtype == dns.TypeSRV || qtype == dns.TypeANY {
		for _, s := range n.srv {
			m.Answer = append(m.Answer, &dns.SRV{Hdr: d.hdr(qname, dns.TypeSRV), Priority: 0,
				Weight: uint16(100 / len(n.srv)), Port: s.port, Target: s.target})
			if t := z.names[s.target]; t != nil {
				for _, ip := range t.a {
					m.Extra = append(m.Extra, &dns.A{Hdr: d.hdr(s.target, dns.TypeA), A: ip.AsSlice()})
				}
				for _, ip := range t.aaaa {
					m.Extra = append(m.Extra, &dns.AAAA{Hdr: d.hdr(s.target, dns.TypeAAAA), AAAA: ip.AsSlice()})
				}
			}
		}
	}
	if qtype == dns.TypeSOA && name == z.domain {
		m.Answer = append(m.Answer, d.soa(z))
	}
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{d.soa(z)} // NODATA
	}
	return m
}

func (d *DNS) soa(z *zone) dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: z.domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: d.ttl},
		Ns: "ns.dns." + z.domain, Mbox: "hostmaster." + z.domain, Serial: 1,
		Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: d.ttl}
}

// forward answers from the cache or the first upstream that answers; SERVFAIL if
// none does.
func (d *DNS) forward(r *dns.Msg, network string) *dns.Msg {
	q := r.Question[0]
	key := cacheKey{name: strings.ToLower(q.Name), qtype: q.Qtype, qclass: q.Qclass, do: doBit(r)}
	if m := d.cache.get(key, d.now()); m != nil {
		m.Id = r.Id
		m.Question = r.Question
		return m
	}
	proto := "udp"
	if strings.HasPrefix(network, "tcp") {
		proto = "tcp"
	}
	// An upstream that fails or refuses gives way to the next; the client sees
	// SERVFAIL only when none answers.
	for _, up := range d.upstreams {
		resp, err := d.exchange(r, up, proto)
		if err != nil || resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused {
			continue
		}
		if !resp.Truncated {
			d.cache.put(key, resp, d.now())
		}
		resp.Id = r.Id
		return resp
	}
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeServerFailure)
	return m
}

func (d *DNS) exchange(r *dns.Msg, upstream, proto string) (*dns.Msg, error) {
	// Read whole UDP answers from upstream; ServeDNS truncates for the client.
	c := &dns.Client{Net: proto, Timeout: d.timeout, UDPSize: dns.MaxMsgSize}
	req := r.Copy()
	req.Id = dns.Id()
	resp, _, err := c.Exchange(req, upstream)
	if err == nil && resp.Truncated && proto == "udp" {
		c.Net = "tcp"
		resp, _, err = c.Exchange(req, upstream)
	}
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", upstream, err)
	}
	return resp, nil
}

func doBit(r *dns.Msg) bool {
	opt := r.IsEdns0()
	return opt != nil && opt.Do()
}

var _ dns.Handler = (*DNS)(nil)
