// Package e2e holds whole-system tests of gantry on real containerd, git, Vault and an
// OCI registry, and the sources of the test images (e2e/images).
package e2e
