package secrets

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gantry.io/gantry/api"
)

func strp(s string) *string { return &s }

func TestSplitKey(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mount   *string
		version string
		key     string
		want    string // readPath, or "" when an error is expected
	}{
		{"v2 below mount", strp("secret"), "v2", "app/db", "secret/data/app/db"},
		{"v2 is the default", strp("secret"), "", "app", "secret/data/app"},
		{"v2 key repeats mount", strp("secret"), "v2", "secret/app", "secret/data/app"},
		{"v2 key repeats mount and data", strp("secret"), "v2", "secret/data/app", "secret/data/app"},
		{"v2 nested mount", strp("team/kv/"), "v2", "/app/", "team/kv/data/app"},
		{"v1 below mount", strp("kv"), "v1", "app/db", "kv/app/db"},
		{"v1 keeps a data segment", strp("kv"), "v1", "kv/data/x", "kv/data/x"},
		{"no mount: first segment", nil, "v2", "kv2/app", "kv2/data/app"},
		{"no mount: data given", nil, "v2", "kv2/data/app", "kv2/data/app"},
		{"no mount: single segment uses default", nil, "v2", "app", "secret/data/app"},
		{"no mount v1", nil, "v1", "kv/app", "kv/app"},
		{"empty mount is no mount", strp(""), "v1", "kv/app", "kv/app"},
		{"empty key", strp("secret"), "v2", "/", ""},
		{"dot dot", strp("secret"), "v2", "app/../../sys/policy", ""},
		{"dot", strp("secret"), "v2", "./app", ""},
		{"double slash", strp("secret"), "v2", "a//b", ""},
		{"bad version", strp("secret"), "v3", "app", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := splitKey(tc.mount, tc.version, tc.key)
			if tc.want == "" {
				if !errors.Is(err, api.ErrInvalidArgument) {
					t.Fatalf("splitKey(%q) = %q, %v; want ErrInvalidArgument", tc.key, p.readPath(), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("splitKey(%q): %v", tc.key, err)
			}
			if got := p.readPath(); got != tc.want {
				t.Errorf("splitKey(%q).readPath() = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	if n, err := parseVersion(KVv2, ""); n != 0 || err != nil {
		t.Errorf(`parseVersion(v2, "") = %d, %v`, n, err)
	}
	if n, err := parseVersion(KVv2, "3"); n != 3 || err != nil {
		t.Errorf(`parseVersion(v2, "3") = %d, %v`, n, err)
	}
	for _, bad := range []struct{ kv, v string }{{KVv2, "0"}, {KVv2, "-1"}, {KVv2, "latest"}, {KVv1, "1"}} {
		if _, err := parseVersion(bad.kv, bad.v); !errors.Is(err, api.ErrInvalidArgument) {
			t.Errorf("parseVersion(%s, %q) err = %v, want ErrInvalidArgument", bad.kv, bad.v, err)
		}
	}
}

// decodeVaultJSON decodes as vault/api does: numbers stay json.Number.
func decodeVaultJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPropertyExtraction(t *testing.T) {
	data := decodeVaultJSON(t, `{
		"user": "app",
		"port": 5432,
		"ratio": 0.25,
		"enabled": true,
		"nothing": null,
		"tls.crt": "PEM",
		"db": {"host": "db.local", "replicas": ["r1", "r2"], "opts": {"ssl": true}},
		"list": [1, {"x": "y"}]
	}`)
	for _, tc := range []struct {
		property string
		want     string
		missing  bool
	}{
		{"user", "app", false},
		{"port", "5432", false},
		{"ratio", "0.25", false},
		{"enabled", "true", false},
		{"nothing", "null", false},
		{"tls.crt", "PEM", false},
		{"db.host", "db.local", false},
		{"db.replicas", `["r1","r2"]`, false},
		{"db.replicas.1", "r2", false},
		{"db.opts", `{"ssl":true}`, false},
		{"list.1.x", "y", false},
		{"db", `{"host":"db.local","opts":{"ssl":true},"replicas":["r1","r2"]}`, false},
		{"absent", "", true},
		{"db.absent", "", true},
		{"db.replicas.9", "", true},
		{"db.replicas.x", "", true},
		{"user.sub", "", true},
	} {
		v, ok := lookupProperty(data, tc.property)
		if ok == tc.missing {
			t.Errorf("lookupProperty(%q) found = %v, want %v", tc.property, ok, !tc.missing)
			continue
		}
		if tc.missing {
			continue
		}
		b, err := encodeValue(v)
		if err != nil {
			t.Fatalf("encodeValue(%q): %v", tc.property, err)
		}
		if string(b) != tc.want {
			t.Errorf("property %q = %s, want %s", tc.property, b, tc.want)
		}
	}
}

func TestExtractAll(t *testing.T) {
	data := decodeVaultJSON(t, `{"user":"app","port":5432,"db":{"host":"h","ssl":false},"s":"x"}`)
	got, err := extractAll(data, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"user": "app", "port": "5432", "db": `{"host":"h","ssl":false}`, "s": "x"}
	if d := cmp.Diff(want, stringify(got)); d != "" {
		t.Errorf("extractAll (-want +got):\n%s", d)
	}
	got, err = extractAll(data, "db")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"host": "h", "ssl": "false"}, stringify(got)); d != "" {
		t.Errorf("extractAll(db) (-want +got):\n%s", d)
	}
	if _, err := extractAll(data, "user"); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("extractAll of a string property: err %v, want ErrInvalidArgument", err)
	}
	if _, err := extractAll(data, "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("extractAll of a missing property: err %v, want ErrNotFound", err)
	}
}

func stringify(m map[string][]byte) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func TestHashIsStableAndUnambiguous(t *testing.T) {
	a := Hash(map[string][]byte{"a": []byte("bc"), "d": []byte("e")})
	b := Hash(map[string][]byte{"d": []byte("e"), "a": []byte("bc")})
	if a != b {
		t.Errorf("hash depends on map order: %s vs %s", a, b)
	}
	if !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+64 {
		t.Errorf("hash %q: want sha256:<64 hex>", a)
	}
	// Moving a byte between key and value must change the hash.
	if c := Hash(map[string][]byte{"ab": []byte("c"), "d": []byte("e")}); c == a {
		t.Errorf("different maps hash alike: %s", c)
	}
	if c := Hash(map[string][]byte{"a": []byte("bc"), "d": []byte("f")}); c == a {
		t.Errorf("a changed value keeps the hash")
	}
}

func TestDescribeShowsNoValues(t *testing.T) {
	r := &Resolved{
		Name: "db", Namespace: "shop", Store: "shop/vault",
		Data:     map[string][]byte{"password": []byte("hunter2-very-secret"), "user": []byte("app-user-name")},
		Versions: map[string]string{"password": "3", "user": ""},
		Sources: map[string]Source{
			"password": {Path: "secret/data/db", Property: "password", Version: "3"},
			"user":     {Path: "kv/db", Property: "user"},
		},
	}
	r.Hash = Hash(r.Data)
	want := map[string]string{
		"name": "db", "namespace": "shop", "store": "shop/vault", "hash": r.Hash, "keys": "password,user",
		"key:password": "secret/data/db#password@3", "key:user": "kv/db#user",
	}
	if d := cmp.Diff(want, Describe(r)); d != "" {
		t.Errorf("Describe (-want +got):\n%s", d)
	}
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{
		string(j), r.String(), strings.Join([]string{sprintf("%v", r), sprintf("%+v", r), sprintf("%#v", r), sprintf("%v", *r), sprintf("%s", r)}, "\n"),
	} {
		for _, v := range r.Data {
			if strings.Contains(text, string(v)) {
				t.Errorf("printed Resolved contains a value: %s", text)
			}
		}
	}
}
