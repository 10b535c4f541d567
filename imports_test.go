package gantry_test

import (
	"os/exec"
	"strings"
	"testing"
)

// importRules are the dependency rules of DESIGN.md: a package (and everything it
// imports, transitively, outside tests) must not reach any of the forbidden prefixes.
var importRules = []struct {
	pkg       string
	forbidden []string
}{
	{"gantry.io/gantry/planner", []string{
		"gantry.io/gantry/executor",
		"github.com/containerd/",
		"github.com/go-git/",
		"github.com/hashicorp/vault",
		"go.etcd.io/",
	}},
	{"gantry.io/gantry/executor", []string{"gantry.io/gantry/controlplane"}},
	{"gantry.io/gantry/controlplane", []string{"gantry.io/gantry/executor"}},
	{"gantry.io/gantry/manifest", []string{
		"gantry.io/gantry/executor", "gantry.io/gantry/controlplane", "gantry.io/gantry/store",
	}},
	{"gantry.io/gantry/api", []string{"gantry.io/gantry/"}},
}

func TestImportRules(t *testing.T) {
	for _, rule := range importRules {
		out, err := exec.Command("go", "list", "-f", `{{join .Deps "\n"}}`, rule.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", rule.pkg, err, out)
		}
		for _, dep := range strings.Split(string(out), "\n") {
			for _, bad := range rule.forbidden {
				if strings.HasPrefix(dep, bad) || dep == strings.TrimSuffix(bad, "/") {
					t.Errorf("%s imports %s (forbidden: %s)", rule.pkg, dep, bad)
				}
			}
		}
	}
}

// TestImportRulesCanFail proves the check sees transitive imports: the e2e tools file
// pins containerd, so a rule forbidding containerd for it must trip.
func TestImportRulesCanFail(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "tools", "-f", `{{join .Deps "\n"}}`, "gantry.io/gantry/e2e").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "github.com/containerd/containerd/v2/client") {
		t.Fatalf("go list did not report transitive imports; the import rules would pass vacuously")
	}
}
