package netsvc

import (
	"context"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// fakeUpstream is a resolver on 127.0.0.1 that knows example.test (A 192.0.2.1, TTL
// 60) and answers NXDOMAIN for the rest, counting the queries it gets.
type fakeUpstream struct {
	addr    string
	queries atomic.Int64
}

func startUpstream(t testing.TB) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	u.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		switch q := r.Question[0]; {
		case q.Name == "example.test." && q.Qtype == dns.TypeA:
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)}}
		case q.Name == "big.test." && q.Qtype == dns.TypeTXT:
			for i := 0; i < 40; i++ {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
					Txt: []string{strings.Repeat("x", 100)}})
			}
		default:
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 30},
				Ns: "ns.test.", Mbox: "h.test.", Minttl: 30}}
		}
		_ = w.WriteMsg(m)
	})
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	return u
}

func startDNS(t testing.TB, opts ...DNSOption) *DNS {
	t.Helper()
	d, err := NewDNS(opts...)
	if err != nil {
		t.Fatalf("NewDNS: %v", err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func query(t testing.TB, network, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("%s query %s %s to %s: %v", network, name, dns.TypeToString[qtype], server, err)
	}
	return resp
}

// answers renders the answer section without TTLs, sorted.
func answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, "A "+v.A.String())
		case *dns.AAAA:
			out = append(out, "AAAA "+v.AAAA.String())
		case *dns.SRV:
			out = append(out, "SRV "+v.Target+" "+itoa(v.Port))
		case *dns.PTR:
			out = append(out, "PTR "+v.Ptr)
		default:
			out = append(out, rr.String())
		}
	}
	sort.Strings(out)
	return out
}

func itoa(p uint16) string { return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[8:] }

func TestDNSRecords(t *testing.T) {
	up := startUpstream(t)
	d := startDNS(t, WithListen("127.0.0.1:0", "[::1]:0"), WithUpstreams(up.addr))
	d.Update(sampleState())

	const sfx = ".svc.cluster.local."
	cases := []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"web.default" + sfx, dns.TypeA, dns.RcodeSuccess, []string{"A 10.96.0.10"}},
		{"WEB.Default" + sfx, dns.TypeAAAA, dns.RcodeSuccess, []string{"AAAA fd00:10:96::a"}},
		{"db.default" + sfx, dns.TypeA, dns.RcodeSuccess, []string{"A 10.244.0.20"}},      // headless → ready pods
		{"db-0.db.default" + sfx, dns.TypeA, dns.RcodeSuccess, []string{"A 10.244.0.20"}}, // pod hostname
		{"empty.default" + sfx, dns.TypeA, dns.RcodeSuccess, []string{"A 10.96.0.12"}},    // no endpoints: the name still answers
		{"_http._tcp.web.default" + sfx, dns.TypeSRV, dns.RcodeSuccess, []string{"SRV web.default" + sfx + " 80"}},
		{"_dns._udp.dns.kube-system" + sfx, dns.TypeSRV, dns.RcodeSuccess, []string{"SRV dns.kube-system" + sfx + " 53"}},
		{"_dns-tcp._tcp.dns.kube-system" + sfx, dns.TypeSRV, dns.RcodeSuccess, []string{"SRV dns.kube-system" + sfx + " 53"}},
		{"10.0.96.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR web.default" + sfx}},
		{"a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR web.default" + sfx}},
		{"20.0.244.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR db-0.db.default" + sfx}},
		{"5.0.244.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR 10-244-0-5.web.default" + sfx}},
		{"web.default" + sfx, dns.TypeTXT, dns.RcodeSuccess, nil}, // NODATA
		{"default" + sfx, dns.TypeA, dns.RcodeSuccess, nil},       // empty non-terminal
		{"nope.default" + sfx, dns.TypeA, dns.RcodeNameError, nil},
		{"web.default.svc.cluster.local.default" + sfx, dns.TypeA, dns.RcodeNameError, nil}, // a search-path miss
		{"example.test.", dns.TypeA, dns.RcodeSuccess, []string{"A 192.0.2.1"}},             // forwarded
		{"missing.test.", dns.TypeA, dns.RcodeNameError, nil},                               // forwarded NXDOMAIN
	}
	servers := map[string][]net.Addr{"udp": d.UDPAddrs(), "tcp": d.TCPAddrs()}
	for _, network := range []string{"udp", "tcp"} {
		for _, srv := range servers[network] {
			for _, tc := range cases {
				resp := query(t, network, srv.String(), tc.name, tc.qtype)
				if resp.Rcode != tc.rcode {
					t.Errorf("%s %s %s %s: rcode %s, want %s", network, srv, tc.name, dns.TypeToString[tc.qtype],
						dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.rcode])
				}
				if diff := cmp.Diff(tc.want, answers(resp)); diff != "" {
					t.Errorf("%s %s %s %s (-want +got):\n%s", network, srv, tc.name, dns.TypeToString[tc.qtype], diff)
				}
			}
		}
	}
	// example.test and missing.test went upstream once each over UDP and once over
	// TCP at most (the cache is shared): 4 answers served from 2–4 upstream queries.
	if n := up.queries.Load(); n > 2 {
		t.Errorf("upstream got %d queries for 2 distinct names, want 2 (the rest from the cache)", n)
	}
}

func TestDNSUpdateSwapsRecords(t *testing.T) {
	d := startDNS(t, WithListen("127.0.0.1:0"), WithUpstreams(), WithClusterDomain("example.internal"))
	server := d.UDPAddrs()[0].String()
	if r := query(t, "udp", server, "web.default.svc.example.internal.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Fatalf("before Update: rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	st := sampleState()
	d.Update(st)
	if got := answers(query(t, "udp", server, "web.default.svc.example.internal.", dns.TypeA)); !cmp.Equal(got, []string{"A 10.96.0.10"}) {
		t.Fatalf("after Update: %v", got)
	}
	// Headless answers follow readiness.
	st.Endpoints[ServiceKey{"default", "db"}][0].Ready = false
	d.Update(st)
	if r := query(t, "tcp", d.TCPAddrs()[0].String(), "db.default.svc.example.internal.", dns.TypeA); len(r.Answer) != 0 {
		t.Errorf("headless service with no ready pod answered %v", answers(r))
	}
	// No upstreams: other names fail with SERVFAIL rather than hang.
	if r := query(t, "udp", server, "example.test.", dns.TypeA); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("forward without upstreams: rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
}

func TestDNSCacheRespectsTTL(t *testing.T) {
	up := startUpstream(t)
	d := startDNS(t, WithListen("127.0.0.1:0"), WithUpstreams("127.0.0.1:1", up.addr)) // the first upstream refuses
	now := time.Unix(1_000_000, 0)
	d.now = func() time.Time { return now }
	server := d.UDPAddrs()[0].String()

	first := query(t, "udp", server, "example.test.", dns.TypeA)
	if got := answers(first); !cmp.Equal(got, []string{"A 192.0.2.1"}) {
		t.Fatalf("forwarded answer %v", got)
	}
	now = now.Add(20 * time.Second)
	cached := query(t, "udp", server, "example.test.", dns.TypeA)
	if up.queries.Load() != 1 {
		t.Errorf("upstream queried %d times within the TTL, want 1", up.queries.Load())
	}
	if ttl := cached.Answer[0].Header().Ttl; ttl != 40 {
		t.Errorf("cached answer TTL %d, want 40 (60 - 20 s of age)", ttl)
	}
	now = now.Add(41 * time.Second)
	query(t, "udp", server, "example.test.", dns.TypeA)
	if up.queries.Load() != 2 {
		t.Errorf("upstream queried %d times after the TTL expired, want 2", up.queries.Load())
	}
	// A large upstream answer is truncated over UDP and whole over TCP.
	if r := query(t, "udp", server, "big.test.", dns.TypeTXT); !r.Truncated {
		t.Errorf("4 KB answer over plain UDP was not truncated")
	}
	if r := query(t, "tcp", d.TCPAddrs()[0].String(), "big.test.", dns.TypeTXT); r.Truncated || len(r.Answer) != 40 {
		t.Errorf("over TCP: truncated=%v, %d answers, want 40", r.Truncated, len(r.Answer))
	}
}

func TestNewDNSRejectsBadInput(t *testing.T) {
	for name, opts := range map[string][]DNSOption{
		"no listen":    nil,
		"bad listen":   {WithListen("localhost:53")},
		"bad upstream": {WithListen("127.0.0.1:0"), WithUpstreams("resolver.example")},
		"bad domain":   {WithListen("127.0.0.1:0"), WithClusterDomain("a..b")},
	} {
		if _, err := NewDNS(opts...); err == nil {
			t.Errorf("%s: NewDNS accepted it", name)
		}
	}
}

func TestResolvConf(t *testing.T) {
	got := ResolvConf([]string{"10.88.0.1", "fd00:88::1"}, "shop", "")
	want := "nameserver 10.88.0.1\nnameserver fd00:88::1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := ResolvConf(nil, "a", "corp.example."); !strings.Contains(got, "search a.svc.corp.example svc.corp.example corp.example\n") {
		t.Errorf("custom domain: %q", got)
	}
}
