// Command coredns is CoreDNS v1.15.0 (Apache-2.0) built from its Go module with only the
// plugins gantry's DNS benchmark needs: bind (listen on 127.0.0.1 only), file (the zone
// the benchmark generates), hosts (an alternative source of the same records) and
// multisocket (SO_REUSEPORT sockets, optional in the benchmark). No log or errors plugin,
// no cache, no forwarding. It is never shipped; see README.md beside
// this file for how it is built and cached.
package main

import (
	"fmt"
	"os"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// The plugins, registered by their init functions.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/multisocket"
)

// directives is the execution order of the plugins, as in CoreDNS's plugin.cfg.
var directives = []string{"multisocket", "bind", "hosts", "file"}

func main() {
	if err := dnsserver.SetDirectives(directives); err != nil {
		fmt.Fprintf(os.Stderr, "coredns: %v\n", err)
		os.Exit(2)
	}
	coremain.Run()
}
