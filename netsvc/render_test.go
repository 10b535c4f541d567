package netsvc

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./netsvc -run %s -update)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got):\n%s", path, diff)
	}
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   State
	}{
		{"empty", State{}},
		{"sample", sampleState()},
	} {
		t.Run(tc.name, func(t *testing.T) { golden(t, "ruleset-"+tc.name, Render(tc.st)) })
	}
}

func TestRenderShapes(t *testing.T) {
	out := Render(sampleState())
	for _, want := range []string{
		// random balancing over the two ready v4 endpoints, not the unready or terminating ones
		"numgen random mod 2 == 0 dnat ip to 10.244.0.5:8080\n\t\tdnat ip to 10.244.0.6:8080\n\t}",
		`dnat ip6 to [fd00:244::5]:8080`,
		`10.96.0.12 . tcp . 80 : goto "svc/default/empty/tcp/80/v4"`,
		`reject with tcp reset`,
		`tcp . 30080 : goto "ext/default/web/tcp/80/v4"`,
		// hairpin: an endpoint reaching itself through its VIP is masqueraded
		"meta nfproto ipv4 ip saddr . ip daddr @hairpin masquerade",
		"\t\t\t10.244.0.5 . 10.244.0.5,\n",
		"\t\t\tfd00:244::6 . fd00:244::6,\n",
		// ClientIP affinity keeps a chain per endpoint
		`ip saddr @"aff/default/sticky/tcp/8080/10.244.0.9:8080" goto "ep/default/sticky/tcp/8080/10.244.0.9:8080"`,
		`update @"aff/default/sticky/tcp/8080/10.244.0.9:8080" { ip saddr timeout 10m }`,
		`udp . 53 : goto "svc/kube-system/dns/udp/53/v4"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered rule set lacks %q", want)
		}
	}
	for _, bad := range []string{"10.244.0.7", "10.244.0.8", "db", "5432", "ep/default/web/"} {
		if strings.Contains(out, bad) {
			t.Errorf("rendered rule set mentions %q (unready, terminating or headless)", bad)
		}
	}
}

// TestCachedBuildMatchesFresh: reusing unchanged services' parts gives the same
// rule set as building from scratch, and reuses exactly the unchanged ones.
func TestCachedBuildMatchesFresh(t *testing.T) {
	parts := buildParts(sampleState(), nil)
	next := sampleState()
	next.Endpoints[ServiceKey{"default", "web"}][2].Ready = false
	next.Services = append(next.Services, Service{Namespace: "default", Name: "new", ClusterIPs: []netip.Addr{addr("10.96.0.99")}, Ports: []ServicePort{{Port: 1}}})
	nextParts := buildParts(next, parts)
	if diff := cmp.Diff(renderRuleset(buildRuleset(next), "gantry"), renderRuleset(mergeParts(nextParts), "gantry")); diff != "" {
		t.Errorf("cached build differs (-fresh +cached):\n%s", diff)
	}
	for key, p := range nextParts {
		reused := parts[key] == p
		if wantReused := key.Name != "web" && key.Name != "new"; reused != wantReused {
			t.Errorf("service %s: reused=%v, want %v", key, reused, wantReused)
		}
	}
}

// TestDuplicateVIPFirstWins: a VIP:port claimed by two services goes to the first.
func TestDuplicateVIPFirstWins(t *testing.T) {
	st := sampleState()
	dup := st.Services[0]
	dup.Name = "web-copy"
	st.Services = append(st.Services, dup)
	out := Render(st)
	if strings.Contains(out, "web-copy") {
		t.Errorf("the second claimant of 10.96.0.10:80 got rules:\n%s", out)
	}
	if !strings.Contains(out, `10.96.0.10 . tcp . 80 : goto "svc/default/web/tcp/80/v4"`) {
		t.Errorf("the first claimant lost its VIP")
	}
}
