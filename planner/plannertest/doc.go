// Package plannertest builds planner inputs for tests: nodes, Deployments and Pods
// with the Kubernetes defaults applied, the way manifest.Load would return them,
// and a manifest.Desired holding them.
//
//	plannertest.Node("n1").CPU("4").Mem("8Gi").Obj()
//	plannertest.Deployment("web").Replicas(3).Image("web:1").Requests("500m", "1Gi").Obj()
//
// It only builds data; it never imports the planner, so the planner's own tests
// can use it.
package plannertest
