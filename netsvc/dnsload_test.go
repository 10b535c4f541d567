package netsvc

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// This file is the DNS load generator of the benchmarks (dnsbench_test.go): closed-loop
// UDP clients, each with its own socket and one query in flight, asking random queries
// from a prepared list for a fixed duration.

// loadQuery is one query, packed once, and what its answer must contain.
type loadQuery struct {
	wire []byte // the packed query; bytes 0-1 (the ID) are rewritten per send
	// rdata is the one answer's address (4 or 16 bytes), which the reply must
	// contain; the reply must also be NOERROR with exactly one answer record.
	rdata []byte
}

// newLoadQuery packs a question for name (an FQDN) of type qtype (A or AAAA) whose
// only answer must be ip. Returns an error for a name that does not pack.
func newLoadQuery(name string, qtype uint16, ip net.IP) (loadQuery, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	wire, err := m.Pack()
	if err != nil {
		return loadQuery{}, fmt.Errorf("pack query %s: %w", name, err)
	}
	rd := ip.To4()
	if qtype == dns.TypeAAAA {
		rd = ip.To16()
	}
	return loadQuery{wire: wire, rdata: rd}, nil
}

// loadSpec describes one load run.
type loadSpec struct {
	server   string        // UDP "host:port"; must be on this machine
	queries  []loadQuery   // asked in random order, with replacement
	clients  int           // concurrent clients, each with one query in flight
	duration time.Duration // how long the run sends
	timeout  time.Duration // a reply later than this counts as an error
	seed     uint64        // seeds the clients' choice of queries
}

// loadResult is what one run counted.
type loadResult struct {
	answers  int64 // replies that passed the checks
	wrong    int64 // replies to the query that failed the checks
	timeouts int64 // queries without a reply within spec.timeout, and socket errors
	elapsed  time.Duration
	lat      []time.Duration // latency of each good answer, sorted
}

// qps is the rate of good answers.
func (r loadResult) qps() float64 { return float64(r.answers) / r.elapsed.Seconds() }

// quantile returns the q-quantile (0..1) of the latencies; 0 without answers.
func (r loadResult) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[int(float64(len(r.lat)-1)*q)]
}

// merge adds o's counts and latencies to r (elapsed times add up, so qps stays the
// rate over all the runs).
func (r *loadResult) merge(o loadResult) {
	r.answers += o.answers
	r.wrong += o.wrong
	r.timeouts += o.timeouts
	r.elapsed += o.elapsed
	r.lat = append(r.lat, o.lat...)
	slices.Sort(r.lat)
}

// runLoad sends spec's load and returns its counts. It stops after spec.duration or
// when ctx ends, whichever is first; each client waits at most spec.timeout for its
// last reply. Returns an error only when a client cannot open its socket.
func runLoad(ctx context.Context, spec loadSpec) (loadResult, error) {
	if spec.clients <= 0 || len(spec.queries) == 0 {
		return loadResult{}, fmt.Errorf("load needs clients and queries (got %d, %d)", spec.clients, len(spec.queries))
	}
	conns := make([]*net.UDPConn, spec.clients)
	for i := range conns {
		c, err := net.Dial("udp", spec.server)
		if err != nil {
			for _, c := range conns[:i] {
				_ = c.Close()
			}
			return loadResult{}, fmt.Errorf("load client %d: %w", i, err)
		}
		conns[i] = c.(*net.UDPConn)
	}
	results := make([]loadResult, spec.clients)
	start := time.Now()
	end := start.Add(spec.duration)
	if d, ok := ctx.Deadline(); ok && d.Before(end) {
		end = d
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			results[i] = loadClient(ctx, c, spec, end, rand.New(rand.NewPCG(spec.seed, uint64(i))))
		}()
	}
	wg.Wait()
	total := loadResult{elapsed: time.Since(start)}
	for _, r := range results {
		total.answers += r.answers
		total.wrong += r.wrong
		total.timeouts += r.timeouts
		total.lat = append(total.lat, r.lat...)
	}
	slices.Sort(total.lat)
	return total, nil
}

// loadClient is one client: send, wait for the reply with the same ID, check it,
// repeat until end.
func loadClient(ctx context.Context, c *net.UDPConn, spec loadSpec, end time.Time, rng *rand.Rand) loadResult {
	var res loadResult
	buf := make([]byte, 512)
	out := make([]byte, 0, 512)
	for id := uint16(rng.Uint32()); ; id++ {
		now := time.Now()
		if !now.Before(end) || ctx.Err() != nil {
			return res
		}
		q := spec.queries[rng.IntN(len(spec.queries))]
		out = append(out[:0], q.wire...)
		binary.BigEndian.PutUint16(out, id)
		if err := c.SetReadDeadline(now.Add(spec.timeout)); err != nil {
			res.timeouts++
			continue
		}
		if _, err := c.Write(out); err != nil {
			res.timeouts++
			continue
		}
		for {
			n, err := c.Read(buf)
			if err != nil {
				res.timeouts++ // the next query gets a new ID
				break
			}
			if n < 12 || binary.BigEndian.Uint16(buf) != id {
				continue // a late reply to an earlier, timed-out query
			}
			if goodReply(buf[:n], q) {
				res.answers++
				res.lat = append(res.lat, time.Since(now))
			} else {
				res.wrong++
			}
			break
		}
	}
}

// goodReply checks a reply cheaply, without unpacking it: a response, NOERROR, not
// truncated, one question, exactly one answer record, and the expected address in
// it. (The benchmark compares the full answers of both servers once before the load.)
func goodReply(b []byte, q loadQuery) bool {
	const qr, tc, rcodeMask = 0x80, 0x02, 0x0f
	return len(b) >= 12 &&
		b[2]&qr != 0 && b[2]&tc == 0 && b[3]&rcodeMask == dns.RcodeSuccess &&
		binary.BigEndian.Uint16(b[4:]) == 1 && binary.BigEndian.Uint16(b[6:]) == 1 &&
		bytes.Contains(b[12:], q.rdata)
}

// TestLoadGenerator runs the benchmarks' load generator briefly against the DNS
// server on 127.0.0.1 and checks that it counts right answers, wrong answers
// (wrong address, NXDOMAIN) and timeouts (a socket that never replies) as such.
func TestLoadGenerator(t *testing.T) {
	d, err := NewDNS(WithListen("127.0.0.1:0"), WithUpstreams())
	if err != nil {
		t.Fatal(err)
	}
	st := dnsBenchState(10)
	d.Update(st)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	server := d.UDPAddrs()[0].String()
	_, queries := dnsBenchQuestions(st)

	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })

	wrongIP, err := newLoadQuery("svc-0.bench.svc.cluster.local.", dns.TypeA, net.IPv4(10, 96, 0, 99))
	if err != nil {
		t.Fatal(err)
	}
	absent, err := newLoadQuery("absent.bench.svc.cluster.local.", dns.TypeA, net.IPv4(10, 96, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		server  string
		queries []loadQuery
		timeout time.Duration
		check   func(loadResult) bool
	}{
		{"right answers", server, queries, 2 * time.Second, func(r loadResult) bool {
			// (A timeout is possible on a CI machine busy for 2 s; not a wrong count.)
			return r.answers > 0 && r.wrong == 0 && r.timeouts <= r.answers/100 && len(r.lat) == int(r.answers)
		}},
		{"wrong address", server, []loadQuery{wrongIP}, 2 * time.Second, func(r loadResult) bool { return r.answers == 0 && r.wrong > 0 }},
		{"NXDOMAIN", server, []loadQuery{absent}, 2 * time.Second, func(r loadResult) bool { return r.answers == 0 && r.wrong > 0 }},
		{"no reply", silent.LocalAddr().String(), queries, 50 * time.Millisecond, func(r loadResult) bool {
			return r.answers == 0 && r.wrong == 0 && r.timeouts > 0
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := runLoad(context.Background(), loadSpec{server: tc.server, queries: tc.queries,
				clients: 2, duration: 300 * time.Millisecond, timeout: tc.timeout, seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(res) {
				t.Errorf("answers %d, wrong %d, timeouts %d, latencies %d", res.answers, res.wrong, res.timeouts, len(res.lat))
			}
		})
	}
}

// TestCoreDNSZoneFile checks the zone file given to CoreDNS holds the SOA and one A
// and one AAAA record per service, with the cluster records' TTL.
func TestCoreDNSZoneFile(t *testing.T) {
	st := dnsBenchState(3)
	zp := dns.NewZoneParser(strings.NewReader(coreDNSZoneFile(st, DefaultClusterDomain, DefaultRecordTTL)), "", "")
	var got []string
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if rr.Header().Rrtype != dns.TypeSOA {
			got = append(got, rr.String())
		} else if rr.Header().Name != "cluster.local." {
			t.Errorf("SOA owner %q", rr.Header().Name)
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"svc-0.bench.svc.cluster.local.\t5\tIN\tA\t10.96.0.1",
		"svc-0.bench.svc.cluster.local.\t5\tIN\tAAAA\tfd00:96::1",
		"svc-1.bench.svc.cluster.local.\t5\tIN\tA\t10.96.0.2",
		"svc-1.bench.svc.cluster.local.\t5\tIN\tAAAA\tfd00:96::2",
		"svc-2.bench.svc.cluster.local.\t5\tIN\tA\t10.96.0.3",
		"svc-2.bench.svc.cluster.local.\t5\tIN\tAAAA\tfd00:96::3",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("zone records (-want +got):\n%s", diff)
	}
}
