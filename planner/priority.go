package planner

import corev1 "k8s.io/api/core/v1"

// BuiltinPriorities is the built-in priorityClassName table. A pod's spec.priority,
// when set, wins; otherwise its priorityClassName is looked up in
// Config.PriorityClasses, then here. An unknown or empty name is priority 0.
// The two system classes carry Kubernetes' values.
var BuiltinPriorities = map[string]int32{
	"system-node-critical":    2000001000,
	"system-cluster-critical": 2000000000,
	"high":                    1000,
	"default":                 0,
	"low":                     -1000,
}

// PodPriority resolves the priority of a pod spec as documented on BuiltinPriorities.
// known is false for a non-empty priorityClassName found in neither table.
func PodPriority(spec *corev1.PodSpec, classes map[string]int32) (prio int32, known bool) {
	if spec.Priority != nil {
		return *spec.Priority, true
	}
	name := spec.PriorityClassName
	if name == "" {
		return 0, true
	}
	if p, ok := classes[name]; ok {
		return p, true
	}
	if p, ok := BuiltinPriorities[name]; ok {
		return p, true
	}
	return 0, false
}
