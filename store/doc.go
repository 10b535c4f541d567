// Package store is gantry's etcd-backed typed store: get, list, watch and
// compare-and-swap updates of cluster objects, on an embedded etcd member by default
// or an external cluster. It holds no business logic.
package store
