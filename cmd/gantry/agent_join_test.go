package main

import (
	"bytes"
	"strings"
	"testing"
)

// The join path is exercised end to end by TestUpEndToEnd (a second node joins with a
// token through startNodeAgent); these cases check the command's own wiring.
func TestAgentFlagsChooseOneMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"neither", []string{"agent"}, "exactly one of --pod-manifests DIR or --server URL"},
		{"both", []string{"agent", "--pod-manifests", t.TempDir(), "--server", "https://127.0.0.1:1"}, "exactly one of"},
		{"no credentials and no token", []string{"agent", "--server", "https://127.0.0.1:1", "--data-dir", t.TempDir(), "--node-name", "n1"},
			"holds no node certificate and no --join-token was given"},
		{"bad token", []string{"agent", "--server", "https://127.0.0.1:1", "--data-dir", t.TempDir(), "--node-name", "n1", "--join-token", "nonsense"},
			`join https://127.0.0.1:1 as node "n1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootCmd()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(tc.args)
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("gantry %v: error %v, want it to contain %q", tc.args, err, tc.want)
			}
		})
	}
}
