// Package apiclient is the HTTPS client of gantry's control plane API, used by the
// CLI and by agents: the client config file ($GANTRY_CONFIG, default
// ~/.config/gantry/config), JSON requests with errors classed as api.Err*, watch
// streams, and the exec stream framing. It holds no cluster logic and never imports
// store or etcd.
package apiclient
