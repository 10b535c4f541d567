package apiclient_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane/apiclient"
)

func TestExecFramesRoundTrip(t *testing.T) {
	var wire bytes.Buffer
	out, errw := apiclient.NewFrameWriters(&wire, nil)
	big := strings.Repeat("x", 3<<20) // crosses the frame limit
	out.Write([]byte("hello "))
	errw.Write([]byte("warn"))
	out.Write([]byte(big))
	out.Exit(42, nil)
	var stdout, stderr bytes.Buffer
	code, err := apiclient.ReadFrames(&wire, &stdout, &stderr)
	if err != nil || code != 42 || stdout.String() != "hello "+big || stderr.String() != "warn" {
		t.Fatalf("code %d err %v stdout %d bytes stderr %q", code, err, stdout.Len(), stderr.String())
	}

	wire.Reset()
	out, _ = apiclient.NewFrameWriters(&wire, nil)
	out.Exit(0, errors.New("no such container"))
	if _, err := apiclient.ReadFrames(&wire, &stdout, &stderr); !errors.Is(err, apiclient.ErrRemote) || !strings.Contains(err.Error(), "no such container") {
		t.Fatalf("error frame: %v", err)
	}
	if _, err := apiclient.ReadFrames(strings.NewReader("\x01\x00\x00"), &stdout, &stderr); err == nil {
		t.Fatalf("truncated stream accepted")
	}
	if _, err := apiclient.ReadFrames(strings.NewReader("\x01\xff\xff\xff\xff"), &stdout, &stderr); err == nil {
		t.Fatalf("oversized frame accepted")
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "config")
	want := apiclient.Config{Server: "https://127.0.0.1:6443", CertificateAuthority: "-----BEGIN CERTIFICATE-----\n", Token: "abcdef.0123456789abcdef"}
	if err := apiclient.WriteConfig(path, want); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := apiclient.LoadConfig(path)
	if err != nil || got != want {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	// JSON is accepted too; unknown fields are not.
	os.WriteFile(path, []byte(`{"server":"https://h:1","token":"t"}`), 0o600)
	if c, err := apiclient.LoadConfig(path); err != nil || c.Server != "https://h:1" {
		t.Fatalf("JSON config: %+v %v", c, err)
	}
	os.WriteFile(path, []byte("server: https://h:1\nsevrer: typo\n"), 0o600)
	if _, err := apiclient.LoadConfig(path); !errors.Is(err, api.ErrInvalidArgument) {
		t.Fatalf("unknown field: %v", err)
	}
	if _, err := apiclient.LoadConfig(filepath.Join(dir, "none")); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
	t.Setenv(apiclient.ConfigEnv, "/x/y")
	if apiclient.DefaultConfigPath() != "/x/y" {
		t.Fatalf("GANTRY_CONFIG ignored")
	}
}

func TestPath(t *testing.T) {
	for _, tt := range []struct {
		kind          api.Kind
		ns, name, sub string
		want          string
	}{
		{api.KindPod, "", "", "", "/api/v1/pods"},
		{api.KindPod, "ns", "p", "status", "/api/v1/namespaces/ns/pods/p/status"},
		{api.KindNode, "ignored", "n", "", "/api/v1/nodes/n"},
	} {
		if got := apiclient.Path(tt.kind, tt.ns, tt.name, tt.sub); got != tt.want {
			t.Errorf("Path(%s,%q,%q,%q) = %q, want %q", tt.kind, tt.ns, tt.name, tt.sub, got, tt.want)
		}
	}
}

func TestJoinTokenParsing(t *testing.T) {
	tok := "K10" + strings.Repeat("ab", 32) + "::abcdef.0123456789abcdef"
	jt, err := api.ParseJoinToken(tok)
	if err != nil || jt.String() != tok {
		t.Fatalf("parse %q: %v %v", tok, jt, err)
	}
	for _, bad := range []string{"", "abcdef.0123456789abcdef", "K10zz::abcdef.0123456789abcdef",
		"K10" + strings.Repeat("ab", 32) + "::short.secret", "K10" + strings.Repeat("AB", 32) + "::abcdef.0123456789abcdef"} {
		if _, err := api.ParseJoinToken(bad); !errors.Is(err, api.ErrInvalidArgument) {
			t.Errorf("ParseJoinToken(%q) = %v, want ErrInvalidArgument", bad, err)
		} else if strings.Contains(err.Error(), "0123456789abcdef") {
			t.Errorf("error echoes the secret: %v", err)
		}
	}
}
