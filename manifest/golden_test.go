package manifest

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files and docs/COMPATIBILITY.md from the current code")

// checkGolden compares got with the file at path, or rewrites the file under -update.
func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./manifest -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got; go test ./manifest -update rewrites it):\n%s", path, diff)
	}
}

// TestBrokenTree is the "must show": one directory of broken manifests, every
// kind of mistake reported with file:line:col in one run.
func TestBrokenTree(t *testing.T) {
	d, diags, err := Load("testdata/broken")
	if err != nil {
		t.Fatal(err)
	}
	if !diags.HasErrors() {
		t.Fatal("no errors reported for the broken tree")
	}
	checkGolden(t, "testdata/broken.golden", diags.String())
	for _, want := range []struct{ file, text string }{
		{"syntax.yaml", "YAML syntax error"},
		{"unknown-field.yaml", `unknown field "spec.replica"`},
		{"unsupported.yaml", "spec.template.spec.affinity.podAffinity: not supported by gantry"},
		{"unsupported.yaml", "kind StatefulSet is not supported yet"},
		{"quantity.yaml", `invalid quantity "12XB"`},
		{"selector.yaml", "`selector` does not match template `labels`"},
		{"duplicate.yaml", `duplicate ConfigMap "default/app-config"`},
		{"missing-ref.yaml", `ConfigMap "default/no-such-config" is not defined`},
		{"secret.yaml", "secret values must not live in git; use an ExternalSecret"},
		{"cron.yaml", "spec.schedule"},
		{"kustomization.yaml", "kustomization files are not supported yet"},
	} {
		found := false
		for _, dg := range diags {
			if dg.Pos.File == want.file && strings.Contains(dg.Message, want.text) && dg.Pos.Line > 0 && dg.Pos.Col > 0 {
				found = true
			}
		}
		if !found {
			t.Errorf("no diagnostic in %s containing %q", want.file, want.text)
		}
	}
	// The valid objects of a broken tree are still returned; callers decide not to apply.
	if _, ok := d.Lookup("ConfigMap", "default", "app-config"); !ok {
		t.Errorf("the first app-config ConfigMap is missing from Desired")
	}
	if _, ok := d.Lookup("Deployment", "default", "typo"); ok {
		t.Errorf("a Deployment with errors is in Desired")
	}
}

// TestInvalidFixtures: every testdata/invalid/X.yaml has errors, matching X.golden.
func TestInvalidFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, diags, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if !diags.HasErrors() {
				t.Errorf("no errors")
			}
			checkGolden(t, strings.TrimSuffix(f, ".yaml")+".golden", diags.String())
		})
	}
}

// TestValidFixtures: every testdata/valid/X.yaml loads without any diagnostic.
func TestValidFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			d, diags, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(diags) > 0 {
				t.Errorf("unexpected diagnostics:\n%s", diags)
			}
			if d.Len() == 0 {
				t.Errorf("no objects loaded")
			}
		})
	}
	// All valid fixtures together are one valid tree as well.
	_, diags, err := Load("testdata/valid")
	if err != nil {
		t.Fatal(err)
	}
	if len(diags) > 0 {
		t.Errorf("the valid tree has diagnostics:\n%s", diags)
	}
}

// TestCompatibilityDoc: docs/COMPATIBILITY.md is what SupportTable renders.
func TestCompatibilityDoc(t *testing.T) {
	checkGolden(t, "../docs/COMPATIBILITY.md", CompatibilityMarkdown())
}
