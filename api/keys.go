package api

// Label and annotation keys that gantry reserves. Labels are set on the containers and
// sandboxes gantry creates so a restarted agent can adopt them.
const (
	// Domain is the prefix of every key gantry owns.
	Domain = "gantry.io"

	// AnnotationPrune: "false" keeps the pods of a workload that left git running.
	AnnotationPrune = Domain + "/prune"
	// AnnotationAutoRollback: "false" opts a workload out of automatic rollback.
	AnnotationAutoRollback = Domain + "/auto-rollback"
	// AnnotationRestartOnChange: "false" on an ExternalSecret updates secret files in
	// place instead of rolling the pods that use it.
	AnnotationRestartOnChange = Domain + "/restart-on-change"

	// AnnotationHeartbeat on a node: when the server last received its agent's
	// heartbeat (RFC 3339 with nanoseconds; written by the server only).
	AnnotationHeartbeat = Domain + "/heartbeat"
)

// LabelServiceName on an EndpointSlice names the Service whose endpoints it holds
// (Kubernetes' kubernetes.io/service-name, in gantry's domain).
const LabelServiceName = Domain + "/service-name"
