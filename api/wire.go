package api

import "encoding/json"

// APIPrefix is the path prefix of the control plane's REST API.
const APIPrefix = "/api/v1"

// WatchEvent is one line of a watch stream (?watch=true): newline-delimited JSON, as
// Kubernetes streams it. Type is ADDED, MODIFIED, DELETED or ERROR (then Object is a
// metav1.Status).
type WatchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// JoinRequest is the body of POST /api/v1/join, authenticated by a join token.
type JoinRequest struct {
	// NodeName is the name the node registers under; the certificate's CN.
	NodeName string `json:"nodeName"`
	// CSR is a PEM "CERTIFICATE REQUEST" whose subject the server ignores: it issues
	// CN=NodeName, O=gantry:nodes.
	CSR string `json:"csr"`
}

// JoinResponse is the answer to a JoinRequest.
type JoinResponse struct {
	// Certificate is the node's PEM certificate (client and server use).
	Certificate string `json:"certificate"`
	// CA is the cluster CA's PEM certificate.
	CA string `json:"ca"`
	// PodCIDRs are the node's pod subnets, IPv4 first.
	PodCIDRs []string `json:"podCIDRs"`
}

// TokenRequest is the body of POST /api/v1/tokens (admin only).
type TokenRequest struct {
	Role        Role   `json:"role"`
	TTLSeconds  int64  `json:"ttlSeconds,omitempty"` // 0 = never expires
	Description string `json:"description,omitempty"`
}

// TokenResponse carries a new token; its secret is shown only here. JoinToken is set
// for role join.
type TokenResponse struct {
	Token     string `json:"token"`
	JoinToken string `json:"joinToken,omitempty"`
	Role      Role   `json:"role"`
	Expires   string `json:"expires,omitempty"` // RFC 3339, "" = never
}

// Pod condition and node condition vocabulary gantry adds to Kubernetes'.
const (
	// PodConditionNodeLost is set True on the pods of a node whose heartbeats stopped.
	PodConditionNodeLost = "NodeLost"
	// ReasonHeartbeatMissing is the reason of a Ready=False node condition written
	// by the server, and of a NodeLost pod condition.
	ReasonHeartbeatMissing = "HeartbeatMissing"
	// ReasonAgentReady is the reason of a Ready=True node condition.
	ReasonAgentReady = "AgentReady"
)
