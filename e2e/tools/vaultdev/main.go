// Command vault is HashiCorp Vault v1.14.1 (the last MPL-2.0 release) built from its Go
// module, for gantry's tests: they run it as a dev server on 127.0.0.1 only. It is never
// shipped; see README.md beside this file for how it is built and cached.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
