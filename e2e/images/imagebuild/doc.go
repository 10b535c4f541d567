// Package imagebuild builds gantry's test images without Docker: it compiles the
// programs under e2e/images (echo, batch) statically with the local Go toolchain and
// packages each one, with busybox, into a single-layer OCI image archive that
// containerd's client.Import and go-containerregistry both read.
//
// It owns the image definitions (Specs), the build cache (a stamp per archive holding
// a hash of every input, so an unchanged image is not rebuilt), and reading an archive
// back (Open). It never touches the network: builds run with GOTOOLCHAIN=local and
// GOPROXY=off, in a private module so the repository's go.mod state does not matter.
//
// e2e/images/build is the command-line wrapper (`make images`); e2e/testenv.Images is
// the test wrapper.
package imagebuild
