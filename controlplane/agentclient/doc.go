// Package agentclient is the agent's side of the control plane protocol, as a library
// that the `gantry agent` command wires to the executor (it never imports executor
// itself): joining with a token that pins the server's CA by hash, then mTLS only;
// registering the node with the host's capacity; heartbeats; watching the pods bound
// to the node and handing the full set to a callback; reporting pod status batched and
// only on change; and serving the logs and exec endpoints the server proxies to.
package agentclient
