// Command build builds gantry's test images as OCI archives (see e2e/images/README.md):
//
//	go run ./e2e/images/build -out DIR
//
// writes DIR/echo-v1.tar, DIR/echo-v2.tar and DIR/batch-v1.tar, skipping each image
// whose inputs have not changed since it was built. It must run inside the repository
// (it finds the root by walking up to go.mod) unless -repo is given.
package main
