package netsvc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"gantry.io/gantry/e2e/testenv"
)

// BenchmarkDNSvsCoreDNS (issue #7) compares gantry's DNS server with CoreDNS on the
// same records, in one run: dnsBenchServices dual-stack ClusterIP services, each
// with an A and an AAAA record, served by netsvc.DNS (in a child process: this test
// binary re-executed, see init below) and by CoreDNS's file plugin (the binary of
// e2e/tools/coredns, from a zone file generated from the same State), both on
// 127.0.0.1 with logging off. The same load generator (dnsload_test.go) asks random
// A/AAAA questions for the service names of both, in rounds of -dnsbench.round,
// interleaved A B B A A B B A ... so that drift in the machine's load falls on both.
//
// Before the load, every question is asked of both servers and the answers must be
// identical (names, TTLs, addresses, rcode, AA bit); during the load every reply is
// checked (NOERROR, one answer, the right address). Wrong replies fail the
// benchmark; speed never does. Reported per server: answers/s, p50/p99 latency
// (closed loop, -dnsbench.clients queries in flight), the server process's CPU per
// answer (from /proc: less sensitive to a busy machine than the rate), and the ratio
// gantry/CoreDNS of the rates.
//
// Flags (after -args): -dnsbench.round, -dnsbench.rounds, -dnsbench.clients,
// -dnsbench.multisocket. Set
// GANTRY_DNSBENCH_CPUPROFILE=FILE to write a CPU profile of gantry's server process.
func BenchmarkDNSvsCoreDNS(b *testing.B) {
	if testing.Short() && !testenv.InCI() {
		b.Skip("benchmark with child processes: skipped with -short")
	}
	_, err := exec.LookPath("go")
	testenv.Require(b, err == nil, "go on PATH to build CoreDNS (or run make coredns)")
	coredns := coreDNSBinary(b)

	st := dnsBenchState(dnsBenchServices)
	questions, queries := dnsBenchQuestions(st)
	dir := b.TempDir()
	zoneFile, hostsFile := filepath.Join(dir, "db.cluster.local"), filepath.Join(dir, "hosts")
	writeFile(b, zoneFile, coreDNSZoneFile(st, DefaultClusterDomain, DefaultRecordTTL))
	writeFile(b, hostsFile, coreDNSHostsFile(st, DefaultClusterDomain))
	gantry := startGantryDNSChild(b, dnsBenchServices)
	// coredns-file: the file plugin alone. coredns-hosts: the hosts plugin answers
	// the service names; the names it does not know fall through to the file
	// plugin (the hosts plugin alone answers SERVFAIL where NXDOMAIN is due).
	// -dnsbench.multisocket gives both GOMAXPROCS SO_REUSEPORT sockets.
	multi := ""
	if *dnsBenchMultisocket {
		multi = "\tmultisocket\n"
	}
	file := startCoreDNS(b, "coredns-file", coredns, dir, fmt.Sprintf("%s\tfile %s\n", multi, zoneFile))
	hosts := startCoreDNS(b, "coredns-hosts", coredns, dir, fmt.Sprintf(
		"%s\thosts %s {\n\t\tttl %d\n\t\treload 0\n\t\tno_reverse\n\t\tfallthrough\n\t}\n\tfile %s\n",
		multi, hostsFile, DefaultRecordTTL, zoneFile))
	servers := []*benchServer{gantry, file, hosts}

	for _, s := range servers[1:] {
		if err := compareAnswers(gantry.addr, s.addr, questions); err != nil {
			b.Fatalf("gantry and %s: %v", s.name, err)
		}
	}
	// The benchmark's log keeps 10 lines: per-round figures go to stderr as progress.
	info := "servers:"
	for _, s := range servers {
		info += fmt.Sprintf(" %s on %s (A reply %d bytes)", s.name, s.addr, replySize(b, s.addr, questions[0]))
	}
	b.Log(info)

	spec := loadSpec{queries: queries, clients: *dnsBenchClients, duration: *dnsBenchRound, timeout: 2 * time.Second}
	ctx := context.Background()
	// Warm up both (page faults, GC sizing, the file plugin's first lookups).
	for _, s := range servers {
		spec.server, spec.duration = s.addr, *dnsBenchRound/5
		if _, err := runLoad(ctx, spec); err != nil {
			b.Fatal(err)
		}
	}
	spec.duration = *dnsBenchRound
	load0 := loadAvg()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < *dnsBenchRounds; r++ {
			// Every other round in reverse order, so that each server's mean
			// position in the sequence is the same.
			order := slices.Clone(servers)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, s := range order {
				spec.server, spec.seed = s.addr, uint64(r)
				cpu0, err := procCPU(s.pid)
				if err != nil {
					b.Fatal(err)
				}
				res, err := runLoad(ctx, spec)
				if err != nil {
					b.Fatal(err)
				}
				cpu1, err := procCPU(s.pid)
				if err != nil {
					b.Fatal(err)
				}
				s.cpu += cpu1 - cpu0
				s.total.merge(res)
				fmt.Fprintf(os.Stderr, "round %d %s\n", r+1, s.line(res, cpu1-cpu0))
			}
		}
	}
	b.StopTimer()
	load1 := loadAvg()
	for _, s := range servers {
		t := s.total
		b.Log("total   " + s.line(t, s.cpu))
		if t.wrong > 0 {
			b.Errorf("%s: %d wrong replies", s.name, t.wrong)
		}
		b.ReportMetric(t.qps(), s.name+"-qps")
		b.ReportMetric(us(t.quantile(0.50)), s.name+"-p50-µs")
		b.ReportMetric(us(t.quantile(0.99)), s.name+"-p99-µs")
		b.ReportMetric(s.cpuPerAnswer(), s.name+"-cpu-µs/answer")
		b.ReportMetric(float64(t.timeouts), s.name+"-timeouts")
	}
	summary := fmt.Sprintf("total over %d rounds of %v, %d clients, %d services (A+AAAA): gantry %.0f answers/s",
		*dnsBenchRounds, *dnsBenchRound, *dnsBenchClients, dnsBenchServices, gantry.total.qps())
	for _, s := range servers[1:] {
		ratio := gantry.total.qps() / s.total.qps()
		cpuRatio := s.cpuPerAnswer() / gantry.cpuPerAnswer()
		b.ReportMetric(ratio, "ratio-"+strings.TrimPrefix(s.name, "coredns-"))
		b.ReportMetric(cpuRatio, "cpu-ratio-"+strings.TrimPrefix(s.name, "coredns-"))
		summary += fmt.Sprintf(", %s %.0f (ratio %.2f; CPU per answer %.2f× gantry's)", s.name, s.total.qps(), ratio, cpuRatio)
	}
	b.Logf("%s; load average %s → %s", summary, load0, load1)
}

var (
	dnsBenchRound   = flag.Duration("dnsbench.round", 5*time.Second, "BenchmarkDNSvsCoreDNS: duration of one round of load on one server")
	dnsBenchRounds  = flag.Int("dnsbench.rounds", 4, "BenchmarkDNSvsCoreDNS: rounds per server, interleaved")
	dnsBenchClients = flag.Int("dnsbench.clients", 32, "BenchmarkDNSvsCoreDNS: concurrent UDP clients, one query in flight each")
	// CoreDNS serves one socket per port by default; its multisocket plugin opens
	// GOMAXPROCS SO_REUSEPORT sockets, each with its own server.
	dnsBenchMultisocket = flag.Bool("dnsbench.multisocket", false, "BenchmarkDNSvsCoreDNS: CoreDNS with the multisocket plugin")
)

// dnsBenchServices is the number of services the DNS benchmark serves.
const dnsBenchServices = 1000

// dnsBenchChildEnv makes this test binary a gantry DNS server (see init).
const dnsBenchChildEnv = "GANTRY_DNSBENCH_CHILD"

// benchServer is one DNS server process under load and what it was measured at.
type benchServer struct {
	name  string
	addr  string // UDP 127.0.0.1:port
	pid   int
	total loadResult
	cpu   time.Duration
}

// cpuPerAnswer is the server's CPU time per good answer over all rounds, in µs.
func (s *benchServer) cpuPerAnswer() float64 { return us(s.cpu) / float64(max(s.total.answers, 1)) }

// line renders res, measured with cpu of server time, as one line.
func (s *benchServer) line(res loadResult, cpu time.Duration) string {
	return fmt.Sprintf("%-13s %8.0f answers/s  p50 %6.0f µs  p99 %6.0f µs  server CPU %5.1f µs/answer  wrong %d  timeouts %d",
		s.name, res.qps(), us(res.quantile(0.50)), us(res.quantile(0.99)),
		us(cpu)/float64(max(res.answers, 1)), res.wrong, res.timeouts)
}

// dnsBenchState is n dual-stack ClusterIP services svc-<i> in namespace bench, VIPs
// 10.96.x.y and fd00:96::x:y, one named port, no endpoints (a ClusterIP name
// answers with its VIPs whatever the endpoints).
func dnsBenchState(n int) State {
	st := State{Endpoints: map[ServiceKey][]Endpoint{}}
	for i := 0; i < n; i++ {
		v4 := netip.AddrFrom4([4]byte{10, 96, byte((i + 1) >> 8), byte(i + 1)})
		v6 := netip.AddrFrom16([16]byte{0: 0xfd, 3: 0x96, 14: byte((i + 1) >> 8), 15: byte(i + 1)})
		st.Services = append(st.Services, Service{Namespace: "bench", Name: fmt.Sprintf("svc-%d", i),
			ClusterIPs: []netip.Addr{v4, v6}, Ports: []ServicePort{{Name: "http", Port: 80}}})
	}
	return st
}

// dnsBenchQuestions returns, for every service of st, its A and AAAA questions, and
// the same as load queries.
func dnsBenchQuestions(st State) ([]dns.Question, []loadQuery) {
	var qs []dns.Question
	var lq []loadQuery
	for _, svc := range st.Services {
		name := fmt.Sprintf("%s.%s.svc.%s.", svc.Name, svc.Namespace, DefaultClusterDomain)
		for _, ip := range svc.ClusterIPs {
			t := dns.TypeA
			if ip.Is6() {
				t = dns.TypeAAAA
			}
			q, err := newLoadQuery(name, t, ip.AsSlice())
			if err != nil {
				panic(err) // generated names always pack
			}
			qs = append(qs, dns.Question{Name: name, Qtype: t, Qclass: dns.ClassINET})
			lq = append(lq, q)
		}
	}
	return qs, lq
}

// coreDNSHostsFile renders st's ClusterIP records as a hosts file for CoreDNS's
// hosts plugin: one line per VIP.
func coreDNSHostsFile(st State, domain string) string {
	var b strings.Builder
	for _, svc := range st.Services {
		for _, ip := range svc.ClusterIPs {
			fmt.Fprintf(&b, "%s %s.%s.svc.%s\n", ip, svc.Name, svc.Namespace, strings.TrimSuffix(domain, "."))
		}
	}
	return b.String()
}

func writeFile(b *testing.B, path, content string) {
	b.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
}

// coreDNSZoneFile renders st's ClusterIP records as a zone file for CoreDNS's file
// plugin: the SOA gantry answers with, then A/AAAA per service, all with TTL ttl.
func coreDNSZoneFile(st State, domain string, ttl uint32) string {
	origin := dns.Fqdn(domain)
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s\n$TTL %d\n", origin, ttl)
	fmt.Fprintf(&b, "@ IN SOA ns.dns.%s hostmaster.%s 1 7200 1800 86400 %d\n", origin, origin, ttl)
	for _, svc := range st.Services {
		for _, ip := range svc.ClusterIPs {
			t := "A"
			if ip.Is6() {
				t = "AAAA"
			}
			fmt.Fprintf(&b, "%s.%s.svc IN %s %s\n", svc.Name, svc.Namespace, t, ip)
		}
	}
	return b.String()
}

// init turns this test binary into gantry's DNS server for BenchmarkDNSvsCoreDNS
// when dnsBenchChildEnv holds a number of services: it serves dnsBenchState of that
// size on a free port of 127.0.0.1 (UDP and TCP), prints "listening ADDR" on stdout
// and exits when its stdin closes. (An init function rather than TestMain, so that
// the package stays free to get a TestMain of its own.)
func init() {
	n, err := strconv.Atoi(os.Getenv(dnsBenchChildEnv))
	if err != nil {
		return
	}
	if err := serveDNSBenchChild(n); err != nil {
		fmt.Fprintf(os.Stderr, "gantry DNS bench server: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func serveDNSBenchChild(n int) error {
	if path := os.Getenv("GANTRY_DNSBENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	d, err := NewDNS(WithListen("127.0.0.1:0"), WithUpstreams())
	if err != nil {
		return err
	}
	d.Update(dnsBenchState(n))
	if err := d.Start(context.Background()); err != nil {
		return err
	}
	defer d.Close()
	fmt.Printf("listening %s\n", d.UDPAddrs()[0])
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// startGantryDNSChild runs this test binary as gantry's DNS server (init) and
// stops it at cleanup.
func startGantryDNSChild(b *testing.B, services int) *benchServer {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), dnsBenchChildEnv+"="+strconv.Itoa(services))
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start gantry DNS child: %v", err)
	}
	b.Cleanup(func() {
		_ = stdin.Close() // the child's cue to stop
		stopProcess(cmd, 10*time.Second)
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		b.Fatalf("gantry DNS child did not start (%q, %v): %s", line, err, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return &benchServer{name: "gantry", addr: addr, pid: cmd.Process.Pid}
}

// coreDNSBinary builds (or finds up to date) the CoreDNS of e2e/tools/coredns under
// the cache directory and returns its path.
func coreDNSBinary(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(testenv.CacheDir(), "coredns", "coredns")
	out, err := exec.Command("bash", filepath.Join(testenv.RepoRoot(), "e2e", "tools", "coredns", "build.sh"), bin).CombinedOutput()
	if err != nil {
		b.Fatalf("build CoreDNS: %v\n%s", err, out)
	}
	return bin
}

// startCoreDNS runs CoreDNS with a server block for the cluster domain on a free
// port of 127.0.0.1 holding "bind 127.0.0.1" and then plugins (Corefile lines), its
// Corefile written into dir, and waits until it answers; stopped at cleanup.
func startCoreDNS(b *testing.B, name, bin, dir, plugins string) *benchServer {
	b.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freeDNSPort()
		if err != nil {
			b.Fatal(err)
		}
		corefile := filepath.Join(dir, "Corefile."+name)
		writeFile(b, corefile, fmt.Sprintf("%s:%d {\n\tbind 127.0.0.1\n%s}\n", DefaultClusterDomain, port, plugins))
		cmd := exec.Command(bin, "-conf", corefile, "-quiet")
		var output lockedBuffer
		cmd.Stdout, cmd.Stderr = &output, &output
		if err := cmd.Start(); err != nil {
			b.Fatalf("start %s: %v", name, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = waitDNS(addr, exited, 15*time.Second); lastErr == nil {
			b.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
					_ = cmd.Process.Kill()
					<-exited
				}
			})
			return &benchServer{name: name, addr: addr, pid: cmd.Process.Pid}
		}
		_ = cmd.Process.Kill()
		<-exited
		lastErr = fmt.Errorf("%w; CoreDNS output: %s", lastErr, output.String())
	}
	b.Fatalf("%s did not start: %v", name, lastErr)
	return nil
}

// freeDNSPort returns a port of 127.0.0.1 free for UDP and TCP at the moment.
func freeDNSPort() (int, error) {
	for i := 0; i < 20; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		_ = pc.Close()
		if err == nil {
			_ = l.Close()
			return port, nil
		}
	}
	return 0, errors.New("no port of 127.0.0.1 free for both UDP and TCP")
}

// waitDNS waits until addr answers an SOA query for the cluster domain, the process
// exits, or limit passes.
func waitDNS(addr string, exited <-chan struct{}, limit time.Duration) error {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(DefaultClusterDomain), dns.TypeSOA)
	deadline := time.Now().Add(limit)
	for {
		if r, _, err := c.Exchange(m, addr); err == nil && r.Rcode == dns.RcodeSuccess {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("server on %s exited", addr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server on %s did not answer within %v", addr, limit)
		}
	}
}

// compareAnswers asks every question of both servers over UDP and returns an error
// naming the first whose replies differ in rcode, AA bit or answer records, or that
// has no answer.
func compareAnswers(a, b string, questions []dns.Question) error {
	c := &dns.Client{Timeout: 2 * time.Second}
	ask := func(addr string, q dns.Question) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(q.Name, q.Qtype)
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			return nil, fmt.Errorf("%s %s from %s: %w", q.Name, dns.TypeToString[q.Qtype], addr, err)
		}
		return r, nil
	}
	render := func(r *dns.Msg) string {
		var s strings.Builder
		fmt.Fprintf(&s, "rcode=%s aa=%v", dns.RcodeToString[r.Rcode], r.Authoritative)
		for _, rr := range r.Answer {
			s.WriteString("\n\t" + rr.String())
		}
		return s.String()
	}
	absent := dns.Question{Name: "absent.bench.svc." + dns.Fqdn(DefaultClusterDomain), Qtype: dns.TypeA, Qclass: dns.ClassINET}
	for i, q := range append(append([]dns.Question(nil), questions...), absent) {
		ra, err := ask(a, q)
		if err != nil {
			return err
		}
		rb, err := ask(b, q)
		if err != nil {
			return err
		}
		if sa, sb := render(ra), render(rb); sa != sb {
			return fmt.Errorf("%s %s: the servers answer differently:\n%s: %s\n%s: %s",
				q.Name, dns.TypeToString[q.Qtype], a, sa, b, sb)
		}
		if i < len(questions) && len(ra.Answer) != 1 {
			return fmt.Errorf("%s %s: %d answers, want 1", q.Name, dns.TypeToString[q.Qtype], len(ra.Answer))
		}
		if i == len(questions) && ra.Rcode != dns.RcodeNameError {
			return fmt.Errorf("%s: rcode %s, want NXDOMAIN", q.Name, dns.RcodeToString[ra.Rcode])
		}
	}
	return nil
}

// replySize is the size in bytes of addr's reply to q.
func replySize(b *testing.B, addr string, q dns.Question) int {
	b.Helper()
	m := new(dns.Msg)
	m.SetQuestion(q.Name, q.Qtype)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil {
		b.Fatal(err)
	}
	return r.Len()
}

// procCPU returns the user + system CPU time process pid has used.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu of process %d: %w", pid, err)
	}
	// Fields after the command name (which may hold spaces) in parentheses:
	// state is field 3 of stat(5), utime 14 and stime 15, in clock ticks (100/s).
	_, rest, ok := bytes.Cut(raw, []byte(") "))
	f := strings.Fields(string(rest))
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("cpu of process %d: unexpected /proc stat %q", pid, raw)
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu of process %d: %w", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// loadAvg is the 1-minute load average, or "?".
func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(raw)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// stopProcess waits up to limit for cmd to exit, then kills it.
func stopProcess(cmd *exec.Cmd, limit time.Duration) {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
	}
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// lockedBuffer is an io.Writer safe for a process's stdout and stderr at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
