package api

// Kind names a stored object type. The value is the plural, lower-case resource name
// used in store keys (/gantry/v1/<kind>/...) and API paths (/api/v1/<kind>).
type Kind string

// The kinds of issue #4. Nodes are cluster-scoped; pods and events are namespaced.
const (
	KindNode  Kind = "nodes"
	KindPod   Kind = "pods"
	KindEvent Kind = "events"
)

// Namespaced reports whether objects of kind k live in a namespace.
func (k Kind) Namespaced() bool { return k != KindNode }

// Kinds lists every kind the store and the API serve.
var Kinds = []Kind{KindNode, KindPod, KindEvent}

// DefaultNamespace is the namespace of an object that names none.
const DefaultNamespace = "default"
