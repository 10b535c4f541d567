package manifest

import "strings"

// SupportedField is one row of the supported-field table: a field path that gantry
// implements, and everything below it. "[]" marks the elements of a list; a map field
// (labels, resources.limits, data) covers all of its keys.
type SupportedField struct {
	Path  string // relative to the kind's root or, for pod spec rows, to the pod spec
	Issue int    // the issue that implements the field
	Note  string // constraints beyond what Kubernetes checks; empty when none
}

// KindFields is the table section of one kind.
type KindFields struct {
	Kind        string
	APIVersions []string
	// PodSpecAt is the path of the embedded pod spec ("" when the kind has none); the
	// rows of PodSpecFields apply there.
	PodSpecAt string
	Fields    []SupportedField
}

// metaFields are the ObjectMeta fields every kind supports. Server-managed fields
// (uid, resourceVersion, creationTimestamp, managedFields, …) and ownerReferences,
// finalizers and generateName are not: git is the only owner of desired state.
var metaFields = []SupportedField{
	{Path: "metadata.name", Issue: 2},
	{Path: "metadata.namespace", Issue: 2, Note: `default "default"; ignored for cluster-scoped kinds`},
	{Path: "metadata.labels", Issue: 2},
	{Path: "metadata.annotations", Issue: 2},
}

// PodSpecFields are the pod spec fields gantry implements, relative to the pod spec.
var PodSpecFields = concat([]SupportedField{
	{Path: "containers[].name", Issue: 3},
	{Path: "containers[].image", Issue: 3},
	{Path: "containers[].imagePullPolicy", Issue: 3, Note: "default from the tag: Always for :latest or no tag, else IfNotPresent"},
	{Path: "containers[].command", Issue: 3},
	{Path: "containers[].args", Issue: 3},
	{Path: "containers[].workingDir", Issue: 3},
	{Path: "containers[].env[].name", Issue: 3},
	{Path: "containers[].env[].value", Issue: 3},
	{Path: "containers[].env[].valueFrom.configMapKeyRef", Issue: 6},
	{Path: "containers[].env[].valueFrom.secretKeyRef", Issue: 6, Note: "the Secret is an ExternalSecret target (or a plain Secret when allowed)"},
	{Path: "containers[].envFrom[].prefix", Issue: 6},
	{Path: "containers[].envFrom[].configMapRef", Issue: 6},
	{Path: "containers[].envFrom[].secretRef", Issue: 6},
	{Path: "containers[].ports[].name", Issue: 3},
	{Path: "containers[].ports[].containerPort", Issue: 3},
	{Path: "containers[].ports[].hostPort", Issue: 3},
	{Path: "containers[].ports[].protocol", Issue: 3, Note: "TCP or UDP; default TCP"},
	{Path: "containers[].resources.requests", Issue: 3, Note: "cpu and memory; ephemeral-storage is accepted with a warning and not enforced"},
	{Path: "containers[].resources.limits", Issue: 3, Note: "cpu and memory; ephemeral-storage is accepted with a warning and not enforced"},
	{Path: "containers[].lifecycle.preStop.exec", Issue: 3},
	{Path: "containers[].lifecycle.preStop.sleep", Issue: 3},
	{Path: "containers[].volumeMounts[].name", Issue: 3},
	{Path: "containers[].volumeMounts[].mountPath", Issue: 3},
	{Path: "containers[].volumeMounts[].readOnly", Issue: 3},
	{Path: "containers[].securityContext.runAsUser", Issue: 3},
	{Path: "containers[].securityContext.runAsGroup", Issue: 3},
	{Path: "containers[].securityContext.readOnlyRootFilesystem", Issue: 3},
	{Path: "containers[].securityContext.capabilities.add", Issue: 3},
	{Path: "containers[].securityContext.capabilities.drop", Issue: 3},
	{Path: "containers[].securityContext.privileged", Issue: 3},
	{Path: "containers[].securityContext.allowPrivilegeEscalation", Issue: 3},
	{Path: "initContainers[].name", Issue: 3},
	{Path: "initContainers[].image", Issue: 3},
	{Path: "initContainers[].imagePullPolicy", Issue: 3},
	{Path: "initContainers[].command", Issue: 3},
	{Path: "initContainers[].args", Issue: 3},
	{Path: "initContainers[].workingDir", Issue: 3},
	{Path: "initContainers[].env[].name", Issue: 3},
	{Path: "initContainers[].env[].value", Issue: 3},
	{Path: "initContainers[].env[].valueFrom.configMapKeyRef", Issue: 6},
	{Path: "initContainers[].env[].valueFrom.secretKeyRef", Issue: 6},
	{Path: "initContainers[].envFrom[].prefix", Issue: 6},
	{Path: "initContainers[].envFrom[].configMapRef", Issue: 6},
	{Path: "initContainers[].envFrom[].secretRef", Issue: 6},
	{Path: "initContainers[].resources.requests", Issue: 3},
	{Path: "initContainers[].resources.limits", Issue: 3},
	{Path: "initContainers[].volumeMounts[].name", Issue: 3},
	{Path: "initContainers[].volumeMounts[].mountPath", Issue: 3},
	{Path: "initContainers[].volumeMounts[].readOnly", Issue: 3},
	{Path: "initContainers[].securityContext.runAsUser", Issue: 3},
	{Path: "initContainers[].securityContext.runAsGroup", Issue: 3},
	{Path: "initContainers[].securityContext.readOnlyRootFilesystem", Issue: 3},
	{Path: "initContainers[].securityContext.capabilities.add", Issue: 3},
	{Path: "initContainers[].securityContext.capabilities.drop", Issue: 3},
	{Path: "initContainers[].securityContext.privileged", Issue: 3},
	{Path: "initContainers[].securityContext.allowPrivilegeEscalation", Issue: 3},
	{Path: "volumes[].name", Issue: 3},
	{Path: "volumes[].emptyDir.medium", Issue: 3, Note: `"" (disk) or Memory (tmpfs)`},
	{Path: "volumes[].emptyDir.sizeLimit", Issue: 3},
	{Path: "volumes[].hostPath.path", Issue: 3},
	{Path: "volumes[].hostPath.type", Issue: 3},
	{Path: "volumes[].configMap.name", Issue: 6},
	{Path: "volumes[].configMap.items", Issue: 6},
	{Path: "volumes[].configMap.defaultMode", Issue: 6, Note: "default 0644"},
	{Path: "volumes[].configMap.optional", Issue: 6},
	{Path: "volumes[].secret.secretName", Issue: 6},
	{Path: "volumes[].secret.items", Issue: 6},
	{Path: "volumes[].secret.defaultMode", Issue: 6, Note: "default 0400 (gantry keeps secret files owner-only; Kubernetes uses 0644)"},
	{Path: "volumes[].secret.optional", Issue: 6},
	{Path: "restartPolicy", Issue: 3, Note: "Always for Deployments; OnFailure or Never for Jobs and CronJobs"},
	{Path: "terminationGracePeriodSeconds", Issue: 3, Note: "default 30"},
	{Path: "dnsPolicy", Issue: 7, Note: "ClusterFirst (default: the node's cluster DNS, search <ns>.svc.<domain>, ndots:5) or Default (the host's resolv.conf)"},
	{Path: "nodeSelector", Issue: 5},
	{Path: "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].matchExpressions", Issue: 5},
	{Path: "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[].weight", Issue: 5},
	{Path: "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[].preference.matchExpressions", Issue: 5},
	{Path: "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector", Issue: 5},
	{Path: "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].topologyKey", Issue: 5, Note: "kubernetes.io/hostname only"},
	{Path: "tolerations", Issue: 5},
	{Path: "topologySpreadConstraints[].maxSkew", Issue: 5},
	{Path: "topologySpreadConstraints[].topologyKey", Issue: 5, Note: "kubernetes.io/hostname only"},
	{Path: "topologySpreadConstraints[].whenUnsatisfiable", Issue: 5},
	{Path: "topologySpreadConstraints[].labelSelector", Issue: 5},
	{Path: "priorityClassName", Issue: 5},
}, probeFields("containers[].livenessProbe"), probeFields("containers[].readinessProbe"), probeFields("containers[].startupProbe"))

// probeFields are the supported fields of one probe.
func probeFields(prefix string) []SupportedField {
	rows := []SupportedField{
		{Path: "exec.command", Issue: 3},
		{Path: "httpGet.path", Issue: 3, Note: `default "/"`},
		{Path: "httpGet.port", Issue: 3, Note: "a number or a container port name"},
		{Path: "httpGet.scheme", Issue: 3, Note: "HTTP only"},
		{Path: "httpGet.httpHeaders", Issue: 3},
		{Path: "tcpSocket.port", Issue: 3},
		{Path: "grpc.port", Issue: 3},
		{Path: "grpc.service", Issue: 3},
		{Path: "initialDelaySeconds", Issue: 3},
		{Path: "periodSeconds", Issue: 3, Note: "default 10"},
		{Path: "timeoutSeconds", Issue: 3, Note: "default 1"},
		{Path: "successThreshold", Issue: 3, Note: "default 1; must be 1 for liveness and startup"},
		{Path: "failureThreshold", Issue: 3, Note: "default 3"},
	}
	return withPrefix(prefix, rows)
}

func withPrefix(prefix string, rows []SupportedField) []SupportedField {
	out := make([]SupportedField, len(rows))
	for i, r := range rows {
		r.Path = prefix + "." + r.Path
		out[i] = r
	}
	return out
}

func concat(parts ...[]SupportedField) []SupportedField {
	var out []SupportedField
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var templateMeta = func(prefix string) []SupportedField {
	return []SupportedField{
		{Path: prefix + ".metadata.labels", Issue: 5},
		{Path: prefix + ".metadata.annotations", Issue: 5},
	}
}

var jobSpecFields = func(prefix string) []SupportedField {
	return []SupportedField{
		{Path: prefix + ".completions", Issue: 8, Note: "default 1"},
		{Path: prefix + ".parallelism", Issue: 8, Note: "default 1"},
		{Path: prefix + ".completionMode", Issue: 8, Note: "NonIndexed (default) or Indexed"},
		{Path: prefix + ".backoffLimit", Issue: 8, Note: "default 6"},
		{Path: prefix + ".activeDeadlineSeconds", Issue: 8},
		{Path: prefix + ".ttlSecondsAfterFinished", Issue: 8},
		{Path: prefix + ".suspend", Issue: 8},
	}
}

// storeFields are the SecretStore and ClusterSecretStore fields: provider vault only.
var storeFields = []SupportedField{
	{Path: "spec.provider.vault.server", Issue: 6, Note: "an http:// or https:// URL"},
	{Path: "spec.provider.vault.path", Issue: 6, Note: "the KV mount, e.g. secret"},
	{Path: "spec.provider.vault.version", Issue: 6, Note: "v1 or v2 (default)"},
	{Path: "spec.provider.vault.namespace", Issue: 6, Note: "Vault Enterprise namespace"},
	{Path: "spec.provider.vault.caBundle", Issue: 6},
	{Path: "spec.provider.vault.auth.tokenSecretRef", Issue: 6, Note: "a server-side credential, not a Secret in git (docs/MANIFESTS.md)"},
	{Path: "spec.provider.vault.auth.appRole.path", Issue: 6, Note: `default "approle"`},
	{Path: "spec.provider.vault.auth.appRole.roleId", Issue: 6},
	{Path: "spec.provider.vault.auth.appRole.roleRef", Issue: 6, Note: "a server-side credential"},
	{Path: "spec.provider.vault.auth.appRole.secretRef", Issue: 6, Note: "a server-side credential"},
	{Path: "spec.refreshInterval", Issue: 6},
}

// SupportTable is the supported-field table: one section per kind. It drives the
// "not supported by gantry" check and docs/COMPATIBILITY.md.
var SupportTable = []KindFields{
	{Kind: "Namespace", APIVersions: []string{"v1"}, Fields: metaFields},
	{Kind: "ConfigMap", APIVersions: []string{"v1"}, Fields: concat(metaFields, []SupportedField{
		{Path: "data", Issue: 6},
		{Path: "binaryData", Issue: 6},
	})},
	{Kind: "Secret", APIVersions: []string{"v1"}, Fields: concat(metaFields, []SupportedField{
		{Path: "type", Issue: 6, Note: "default Opaque"},
		{Path: "data", Issue: 6, Note: "refused unless --allow-plain-secrets: use an ExternalSecret"},
		{Path: "stringData", Issue: 6, Note: "refused unless --allow-plain-secrets"},
	})},
	{Kind: "Pod", APIVersions: []string{"v1"}, PodSpecAt: "spec", Fields: metaFields},
	{Kind: "Deployment", APIVersions: []string{"apps/v1"}, PodSpecAt: "spec.template.spec", Fields: concat(metaFields, []SupportedField{
		{Path: "spec.replicas", Issue: 5, Note: "default 1"},
		{Path: "spec.selector", Issue: 5, Note: "must match spec.template.metadata.labels"},
		{Path: "spec.strategy.type", Issue: 5, Note: "RollingUpdate (default) or Recreate"},
		{Path: "spec.strategy.rollingUpdate.maxSurge", Issue: 5, Note: "default 25%"},
		{Path: "spec.strategy.rollingUpdate.maxUnavailable", Issue: 5, Note: "default 25%"},
		{Path: "spec.minReadySeconds", Issue: 5},
		{Path: "spec.progressDeadlineSeconds", Issue: 5, Note: "default 600"},
		{Path: "spec.revisionHistoryLimit", Issue: 5, Note: "default 10"},
		{Path: "spec.paused", Issue: 5},
	}, templateMeta("spec.template"))},
	{Kind: "Job", APIVersions: []string{"batch/v1"}, PodSpecAt: "spec.template.spec", Fields: concat(metaFields,
		jobSpecFields("spec"), templateMeta("spec.template"))},
	{Kind: "CronJob", APIVersions: []string{"batch/v1"}, PodSpecAt: "spec.jobTemplate.spec.template.spec", Fields: concat(metaFields, []SupportedField{
		{Path: "spec.schedule", Issue: 8, Note: "five fields or a descriptor (@hourly); CRON_TZ= prefix allowed"},
		{Path: "spec.timeZone", Issue: 8, Note: "an IANA zone name"},
		{Path: "spec.concurrencyPolicy", Issue: 8, Note: "Allow (default), Forbid, Replace"},
		{Path: "spec.startingDeadlineSeconds", Issue: 8},
		{Path: "spec.suspend", Issue: 8},
		{Path: "spec.successfulJobsHistoryLimit", Issue: 8, Note: "default 3"},
		{Path: "spec.failedJobsHistoryLimit", Issue: 8, Note: "default 1"},
		{Path: "spec.jobTemplate.metadata.labels", Issue: 8},
		{Path: "spec.jobTemplate.metadata.annotations", Issue: 8},
	}, jobSpecFields("spec.jobTemplate.spec"), templateMeta("spec.jobTemplate.spec.template"))},
	{Kind: "Service", APIVersions: []string{"v1"}, Fields: concat(metaFields, []SupportedField{
		{Path: "spec.type", Issue: 7, Note: "ClusterIP (default) or NodePort"},
		{Path: "spec.selector", Issue: 7},
		{Path: "spec.ports[].name", Issue: 7},
		{Path: "spec.ports[].protocol", Issue: 7, Note: "TCP (default) or UDP"},
		{Path: "spec.ports[].port", Issue: 7},
		{Path: "spec.ports[].targetPort", Issue: 7, Note: "default: port; a name must be a container port of a selected workload"},
		{Path: "spec.ports[].nodePort", Issue: 7},
		{Path: "spec.clusterIP", Issue: 7, Note: `"None" for headless; an address is kept if it lies in the service CIDR`},
		{Path: "spec.ipFamilies", Issue: 7},
		{Path: "spec.ipFamilyPolicy", Issue: 7, Note: "default SingleStack"},
		{Path: "spec.sessionAffinity", Issue: 7, Note: "None (default) or ClientIP"},
		{Path: "spec.sessionAffinityConfig.clientIP.timeoutSeconds", Issue: 7},
	})},
	{Kind: "SecretStore", APIVersions: []string{"external-secrets.io/v1", "external-secrets.io/v1beta1"}, Fields: concat(metaFields, storeFields)},
	{Kind: "ClusterSecretStore", APIVersions: []string{"external-secrets.io/v1", "external-secrets.io/v1beta1"}, Fields: concat(metaFields, storeFields)},
	{Kind: "ExternalSecret", APIVersions: []string{"external-secrets.io/v1", "external-secrets.io/v1beta1"}, Fields: concat(metaFields, []SupportedField{
		{Path: "spec.secretStoreRef.name", Issue: 6},
		{Path: "spec.secretStoreRef.kind", Issue: 6, Note: "SecretStore (default) or ClusterSecretStore"},
		{Path: "spec.target.name", Issue: 6, Note: "the Secret that pods use; default: the ExternalSecret's name"},
		{Path: "spec.refreshInterval", Issue: 6, Note: "a duration; default 1h"},
		{Path: "spec.data[].secretKey", Issue: 6},
		{Path: "spec.data[].remoteRef.key", Issue: 6, Note: "the path below the store's mount"},
		{Path: "spec.data[].remoteRef.property", Issue: 6},
		{Path: "spec.data[].remoteRef.version", Issue: 6, Note: "KV v2 version"},
		{Path: "spec.dataFrom[].extract.key", Issue: 6, Note: "every property of the path becomes a key"},
		{Path: "spec.dataFrom[].extract.version", Issue: 6},
	})},
}

// supportNode is the supported-field table of one kind as a tree of field names.
// all marks a supported subtree; children lists the supported fields below a node
// that is only partly supported.
type supportNode struct {
	all      bool
	children map[string]*supportNode
}

func (s *supportNode) add(path string) {
	n := s
	for _, part := range strings.Split(path, ".") {
		part = strings.TrimSuffix(part, "[]")
		if n.all {
			return
		}
		if n.children == nil {
			n.children = map[string]*supportNode{}
		}
		child := n.children[part]
		if child == nil {
			child = &supportNode{}
			n.children[part] = child
		}
		n = child
	}
	n.all = true
	n.children = nil
}

// supportTree builds the tree of one kind section: apiVersion and kind always, the
// rows, and the pod spec rows under PodSpecAt.
func supportTree(k KindFields) *supportNode {
	root := &supportNode{}
	root.add("apiVersion")
	root.add("kind")
	for _, f := range k.Fields {
		root.add(f.Path)
	}
	if k.PodSpecAt != "" {
		for _, f := range PodSpecFields {
			root.add(k.PodSpecAt + "." + f.Path)
		}
	}
	return root
}
