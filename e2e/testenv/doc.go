// Package testenv starts the real components gantry's integration and e2e tests run
// against — containerd, an OCI registry, git servers, a Vault dev server — each on its
// own socket, port and directories, and stops them when the test ends.
//
// A test that lacks a prerequisite (root, a binary) is skipped on a developer machine
// but fails under CI=true: CI provides everything, so a skip there would hide a gap.
package testenv
