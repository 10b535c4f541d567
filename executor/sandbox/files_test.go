package sandbox

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gantry.io/gantry/api"
)

func TestFilterResolvConf(t *testing.T) {
	for name, tc := range map[string]struct {
		in, want string
		dropped  bool
	}{
		"plain": {
			in:   "nameserver 10.0.0.2\nsearch example.internal\noptions ndots:2\n",
			want: "nameserver 10.0.0.2\nsearch example.internal\noptions ndots:2\n",
		},
		"loopback servers dropped": {
			in:      "# generated\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\n",
			want:    "nameserver 10.0.0.2\nnameserver fe80::1%eth0\n",
			dropped: true,
		},
		"only loopback": {
			in:      "nameserver 127.0.0.1\nsearch lan\n",
			want:    "search lan\n",
			dropped: true,
		},
		"junk and comments": {
			in:   "; comment\nsortlist 10.0.0.0\n\nnameserver\n  domain   lan  \nnameserver not-an-ip\n",
			want: "domain lan\n",
			// "not-an-ip" is not a usable server either.
			dropped: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, dropped := filterResolvConf(tc.in)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if dropped != tc.dropped {
				t.Errorf("dropped = %v, want %v", dropped, tc.dropped)
			}
		})
	}
}

func TestDefaultResolvConfFallsBackToSystemdUpstream(t *testing.T) {
	dir := t.TempDir()
	host, upstream := filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "upstream.conf")
	if err := os.WriteFile(host, []byte("nameserver 127.0.0.53\nsearch lan\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(upstream, []byte("nameserver 10.1.1.1\nsearch lan\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(h, s string) { hostResolvConf, systemdResolvConf = h, s }(hostResolvConf, systemdResolvConf)
	hostResolvConf, systemdResolvConf = host, upstream
	got, err := New().resolvConfContents()
	if err != nil {
		t.Fatal(err)
	}
	if got != "nameserver 10.1.1.1\nsearch lan\n" {
		t.Errorf("got %q, want the systemd-resolved upstream list", got)
	}
	got, err = New(WithResolvConf("nameserver 192.0.2.1")).resolvConfContents()
	if err != nil || got != "nameserver 192.0.2.1\n" {
		t.Errorf("WithResolvConf: got %q, %v", got, err)
	}
}

func TestHostsFile(t *testing.T) {
	got := string(hostsFile("web-0", []net.IP{net.ParseIP("10.244.0.5"), net.ParseIP("fd00:10:244::5")}))
	want := "# Pod hosts file, written by gantry.\n" +
		"127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\n" +
		"fe00::0\tip6-mcastprefix\n" +
		"fe00::1\tip6-allnodes\n" +
		"fe00::2\tip6-allrouters\n" +
		"10.244.0.5\tweb-0\n" +
		"fd00:10:244::5\tweb-0\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestPodHostname(t *testing.T) {
	long := strings.Repeat("a", 62) + "-bcd"
	for _, tc := range []struct {
		p       PodRef
		want    string
		invalid bool
	}{
		{p: PodRef{Name: "web-0"}, want: "web-0"},
		{p: PodRef{Name: "web-0", Hostname: "db"}, want: "db"},
		{p: PodRef{Name: long}, want: strings.Repeat("a", 62)}, // truncated, trailing '-' trimmed
		{p: PodRef{}, invalid: true},
		{p: PodRef{Name: "a b"}, invalid: true},
	} {
		got, err := podHostname(tc.p)
		if tc.invalid {
			if !errors.Is(err, api.ErrInvalidArgument) {
				t.Errorf("%+v: err %v, want ErrInvalidArgument", tc.p, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%+v: got %q, %v; want %q", tc.p, got, err, tc.want)
		}
	}
}

func TestConfListShape(t *testing.T) {
	m := New(WithDataDir("/d"), WithNetwork("n", "br"), WithSubnets("10.1.0.0/24", "fd00:1::/64"))
	l, err := m.confList(true)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, p := range l.Plugins {
		types = append(types, p.Network.Type)
	}
	if diff := cmp.Diff([]string{"bridge", "portmap"}, types); diff != "" {
		t.Errorf("plugins (-want +got):\n%s", diff)
	}
	b := string(l.Plugins[0].Bytes)
	for _, want := range []string{`"dataDir":"/d/ipam"`, `[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00:1::/64"}]]`,
		`"isGateway":true`, `"ipMasq":false`, `"hairpinMode":true`, `"bridge":"br"`} {
		if !strings.Contains(b, want) {
			t.Errorf("bridge config lacks %s: %s", want, b)
		}
	}
	if !strings.Contains(string(l.Plugins[1].Bytes), `"portMappings":true`) {
		t.Errorf("portmap lacks the portMappings capability: %s", l.Plugins[1].Bytes)
	}
	// Without hostPorts portmap is left out.
	if l, err := m.confList(false); err != nil || len(l.Plugins) != 1 {
		t.Errorf("confList(false): %d plugins, %v; want bridge alone", len(l.Plugins), err)
	}
	if l, err := New(WithIPMasq(true)).confList(false); err != nil || !strings.Contains(string(l.Plugins[0].Bytes), `"ipMasq":true`) {
		t.Errorf("WithIPMasq(true) not applied: %v", err)
	}
}
