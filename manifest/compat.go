package manifest

import (
	"fmt"
	"strings"
)

// CompatibilityMarkdown renders docs/COMPATIBILITY.md from SupportTable. The test
// TestCompatibilityDoc fails when the committed file differs; `go test ./manifest
// -update` rewrites it.
func CompatibilityMarkdown() string {
	var b strings.Builder
	b.WriteString(`# Compatibility: the Kubernetes fields gantry supports

<!-- Generated from manifest.SupportTable by "go test ./manifest -update". Do not edit. -->

gantry reads Kubernetes YAML. Every field below is implemented; a field that Kubernetes
accepts but that is not listed is an error, "<field path>: not supported by gantry", and a
field Kubernetes does not know is an error, "unknown field". A listed field covers
everything below it (a map field covers all of its keys). The issue column names the
issue that implements the field.

Kinds that Kubernetes defines but gantry does not implement yet (DaemonSet, StatefulSet,
PersistentVolumeClaim, HorizontalPodAutoscaler, Ingress, …) are refused with "kind X is not
supported yet"; ` + "`kustomization.yaml`" + ` files are refused too.

`)
	b.WriteString("## Kinds\n\n| kind | apiVersion | pod spec at |\n|---|---|---|\n")
	for _, k := range SupportTable {
		at := "—"
		if k.PodSpecAt != "" {
			at = "`" + k.PodSpecAt + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", k.Kind, strings.Join(k.APIVersions, ", "), at)
	}
	b.WriteString("\nEvery kind also supports `apiVersion` and `kind`.\n")
	for _, k := range SupportTable {
		fmt.Fprintf(&b, "\n## %s\n\n", k.Kind)
		writeRows(&b, k.Fields)
		if k.PodSpecAt != "" {
			fmt.Fprintf(&b, "\nThe pod spec at `%s` supports the fields of [Pod spec](#pod-spec).\n", k.PodSpecAt)
		}
	}
	b.WriteString("\n## Pod spec\n\nRelative to the pod spec of Pod, Deployment, Job and CronJob.\n\n")
	writeRows(&b, PodSpecFields)
	return b.String()
}

func writeRows(b *strings.Builder, rows []SupportedField) {
	b.WriteString("| field | issue | notes |\n|---|---|---|\n")
	for _, r := range rows {
		note := strings.ReplaceAll(r.Note, "|", `\|`)
		fmt.Fprintf(b, "| `%s` | #%d | %s |\n", r.Path, r.Issue, note)
	}
}
