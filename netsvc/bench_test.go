package netsvc

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// bigState is n services in namespace "bench", each with one TCP port and eps
// ready endpoints; service i has VIP 10.96.x.y and endpoints 10.(100+i/65536)...
func bigState(n, eps int) State {
	st := State{Endpoints: map[ServiceKey][]Endpoint{}}
	for i := 0; i < n; i++ {
		vip := netip.AddrFrom4([4]byte{10, 96, byte((i + 1) >> 8), byte(i + 1)})
		svc := Service{Namespace: "bench", Name: fmt.Sprintf("svc-%d", i), ClusterIPs: []netip.Addr{vip},
			Ports: []ServicePort{{Name: "http", Port: 80}}}
		st.Services = append(st.Services, svc)
		var list []Endpoint
		for e := 0; e < eps; e++ {
			k := i*eps + e
			ip := netip.AddrFrom4([4]byte{10, byte(128 + k>>16), byte(k >> 8), byte(k)})
			list = append(list, Endpoint{IP: ip, Ports: map[string]int32{"http": 8080}, Ready: true})
		}
		st.Endpoints[svc.Key()] = list
	}
	return st
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkEndpointChange measures endpoint change → rules applied: one endpoint
// of one service turns unready (or ready again) and Sync (api=sync) or
// SyncChanged naming that service (api=changed) programs it, on a node holding
// services×4 endpoints. Reports p50/p99 of the call in ms.
func BenchmarkEndpointChange(b *testing.B) {
	for _, tc := range []struct {
		n       int
		changed bool
	}{{1000, false}, {10000, false}, {1000, true}, {10000, true}} {
		n := tc.n
		api := "sync"
		if tc.changed {
			api = "changed"
		}
		b.Run(fmt.Sprintf("api=%s/services=%d", api, n), func(b *testing.B) {
			_, ns := newNetNS(b, "bec")
			p, err := NewProxy(WithNetNS(ns))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			st := bigState(n, 4)
			if err := p.Sync(context.Background(), st); err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			var r0, r1 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				key := st.Services[i%n].Key()
				eps := st.Endpoints[key]
				eps[i%4].Ready = !eps[i%4].Ready
				start := time.Now()
				var err error
				if tc.changed {
					err = p.SyncChanged(context.Background(), st, key)
				} else {
					err = p.Sync(context.Background(), st)
				}
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
			// CPU per change: user, and kernel (the nf_tables commit runs in the
			// sendmsg of the batch), apart from waiting for a shared CPU.
			b.ReportMetric(float64(r1.Utime.Nano()-r0.Utime.Nano())/1e6/float64(b.N), "user-ms/op")
			b.ReportMetric(float64(r1.Stime.Nano()-r0.Stime.Nano())/1e6/float64(b.N), "sys-ms/op")
			b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkFullSync10k is the first Sync (a whole table in one batch) of 10,000
// services × 4 endpoints into a fresh network namespace.
func BenchmarkFullSync10k(b *testing.B) {
	st := bigState(10000, 4)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		_, ns := newNetNS(b, "bfs")
		p, err := NewProxy(WithNetNS(ns))
		if err != nil {
			b.Fatal(err)
		}
		var r0, r1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
		b.StartTimer()
		if err := p.Sync(context.Background(), st); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
		// CPU time of this process (user, and kernel time spent in its netlink
		// syscalls): what the Sync costs, apart from waiting for a shared CPU.
		b.ReportMetric(float64(r1.Utime.Nano()-r0.Utime.Nano())/1e9, "user-s")
		b.ReportMetric(float64(r1.Stime.Nano()-r0.Stime.Nano())/1e9, "sys-s")
		b.ReportMetric(float64(p.Stats().Messages), "netlink-msgs")
		_ = p.Close()
	}
}

// BenchmarkDNSQueries is a Go load generator against the DNS server on 127.0.0.1:
// 32 concurrent UDP clients asking A records of 1,000 service names; reports
// queries per second. b.N bounds the number of queries.
func BenchmarkDNSQueries(b *testing.B) {
	d, err := NewDNS(WithListen("127.0.0.1:0"), WithUpstreams())
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	st := bigState(1000, 4)
	d.Update(st)
	server := d.UDPAddrs()[0].String()
	const clients = 32
	var next atomic.Int64
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("udp", server)
			if err != nil {
				failed.Add(1)
				return
			}
			defer conn.Close()
			dc := &dns.Conn{Conn: conn}
			m := new(dns.Msg)
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				m.SetQuestion(fmt.Sprintf("svc-%d.bench.svc.cluster.local.", i%1000), dns.TypeA)
				_ = dc.SetDeadline(time.Now().Add(2 * time.Second))
				if err := dc.WriteMsg(m); err != nil {
					failed.Add(1)
					continue
				}
				r, err := dc.ReadMsg()
				if err != nil || len(r.Answer) != 1 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Errorf("%d of %d queries failed", f, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "queries/s")
}
