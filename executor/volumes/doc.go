// Package volumes prepares a pod's volumes on the host, under the pod's directory in the
// agent's data dir: emptyDir (a directory, or a size-limited tmpfs for medium Memory),
// hostPath (with its type checks), and configMap and secret volumes, whose files are
// written atomically with a "..data" symlink swap as the kubelet does, so a container
// never sees half of an update. Secret volumes live on tmpfs and never touch the disk.
//
// It returns host paths; the executor core bind-mounts them into the containers. The
// package never resolves ConfigMaps or Secrets itself (the caller passes them in) and
// never talks to containerd.
package volumes
