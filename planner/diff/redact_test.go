package diff

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestSecretValuesNeverAppear puts known secret values into base and head — a
// Secret's data and stringData (changed, created, deleted), kubectl's
// last-applied annotation, a SecretStore's inline AppRole roleId — and asserts
// that no value, raw or base64, appears in the text, markdown or JSON output,
// while the changed keys are listed with differing fingerprints.
func TestSecretValuesNeverAppear(t *testing.T) {
	values := []string{
		"base-data-value-7f3a", "head-data-value-91c2",
		"base-string-value-55d1", "head-string-value-0e4b",
		"created-secret-value-aa01", "deleted-secret-value-bb02",
		"role-id-base-cc03", "role-id-head-dd04",
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	secret := func(name, dataValue, stringValue string) string {
		s := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: " + name + "\n"
		s += "  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{\"data\":{\"password\":\"" + b64(dataValue) + "\"},\"stringData\":{\"token\":\"" + stringValue + "\"}}'\n"
		s += "data:\n  password: " + b64(dataValue) + "\n"
		if stringValue != "" {
			s += "stringData:\n  token: " + stringValue + "\n"
		}
		return s
	}
	store := func(roleID string) string {
		return `apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: vault
spec:
  provider:
    vault:
      server: http://127.0.0.1:8200
      path: secret
      auth:
        appRole:
          roleId: ` + roleID + `
          secretRef:
            name: approle
            key: secret-id
`
	}
	base := load(t,
		secret("db", values[0], values[2]),
		secret("old", values[5], ""),
		store(values[6]),
		deployment("web", "secret=db"))
	head := load(t,
		secret("db", values[1], values[3]),
		secret("new", values[4], ""),
		store(values[7]),
		deployment("web", "secret=db"))
	r := Report{Base: "base", Head: "head", Changes: Compare(base, head)}
	js, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{"text": r.Text(), "markdown": r.Markdown(), "json": string(js)}
	for format, out := range outputs {
		for _, v := range values {
			for _, form := range []string{v, b64(v)} {
				if strings.Contains(out, form) {
					t.Errorf("%s output contains secret value %q:\n%s", format, form, out)
				}
			}
		}
	}

	// The redaction must not hide the change itself.
	fields := map[string]FieldChange{}
	var notes []string
	for _, o := range r.Changes.Objects {
		for _, f := range o.Fields {
			fields[o.Ref()+" "+f.Path] = f
		}
		notes = append(notes, o.Notes...)
		if o.Ref() == "deployment default/web" && (o.Rollout == nil || len(o.Rollout.Cause) != 1 || o.Rollout.Cause[0] != "secret db") {
			t.Errorf("web should roll because secret db changed: %+v", o.Rollout)
		}
	}
	for _, path := range []string{
		"secret default/db data.password",
		"secret default/db stringData.token",
		`secret default/db metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]`,
		"secretstore default/vault spec.provider.vault.auth.appRole.roleId",
	} {
		f, ok := fields[path]
		if !ok {
			t.Errorf("no field change %s; have %v", path, fields)
			continue
		}
		if !strings.HasPrefix(f.Old, "(secret sha256:") || !strings.HasPrefix(f.New, "(secret sha256:") || f.Old == f.New {
			t.Errorf("%s: want two different fingerprints, got %q → %q", path, f.Old, f.New)
		}
	}
	if !strings.Contains(strings.Join(notes, "\n"), "keys: password (values not shown)") {
		t.Errorf("created Secret should list its keys; notes: %q", notes)
	}
}
