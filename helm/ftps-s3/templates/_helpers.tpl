{{/*
Names, labels and the rendered config.toml. Everything that more than one template needs lives here.
*/}}

{{- define "ftps-s3.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fullname, at most 52 characters so that "<fullname>-<ordinal>" pod names, "-admin" and
"controller-revision-hash" labels of StatefulSet pods stay within Kubernetes limits.
*/}}
{{- define "ftps-s3.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ftps-s3.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ftps-s3.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ftps-s3.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ftps-s3.labels" -}}
helm.sh/chart: {{ include "ftps-s3.chart" . }}
{{ include "ftps-s3.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ftps-s3
{{- end }}

{{- define "ftps-s3.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ftps-s3.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ftps-s3.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "ftps-s3.tlsSecretName" -}}
{{- if .Values.tls.certManager.enabled }}
{{- printf "%s-tls" (include "ftps-s3.fullname" .) }}
{{- else }}
{{- .Values.tls.existingSecret }}
{{- end }}
{{- end }}

{{- define "ftps-s3.usersSecretName" -}}
{{- if .Values.users.existingSecret }}
{{- .Values.users.existingSecret }}
{{- else }}
{{- printf "%s-users" (include "ftps-s3.fullname" .) }}
{{- end }}
{{- end }}

{{- define "ftps-s3.adminServiceName" -}}
{{- printf "%s-admin" (include "ftps-s3.fullname" .) }}
{{- end }}

{{/* "30000-30019" -> dict first, last (ints). A single port "30000" is a range of one. */}}
{{- define "ftps-s3.passiveRange" -}}
{{- $parts := splitList "-" (toString .Values.config.passive.ports) }}
{{- $first := int (first $parts) }}
{{- $last := int (last $parts) }}
{{- dict "first" $first "last" $last | toJson }}
{{- end }}

{{/* Replica count used by the workload, the PDB decision and the per-pod Services. */}}
{{- define "ftps-s3.replicas" -}}
{{- int .Values.replicaCount }}
{{- end }}

{{/*
The workload actually rendered: "deployment" (one pod), "cluster" (a StatefulSet whose pods relay
data connections to each other: several replicas behind one Service) or "statefulset" (one
Service per pod). mode=auto picks cluster for replicaCount > 1 or autoscaling, else deployment.
*/}}
{{- define "ftps-s3.mode" -}}
{{- if eq .Values.mode "auto" }}
{{- ternary "cluster" "deployment" (or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled) }}
{{- else }}
{{- .Values.mode }}
{{- end }}
{{- end }}

{{/* "true" when the workload is a StatefulSet (cluster or statefulset mode), else "". */}}
{{- define "ftps-s3.isStatefulSet" -}}
{{- if ne (include "ftps-s3.mode" .) "deployment" }}true{{- end }}
{{- end }}

{{/* Cluster mode: the number of replicas cluster.peers lists (autoscaling.maxReplicas under
autoscaling: ordinals that are not running leave their slices of the passive range unused). */}}
{{- define "ftps-s3.clusterSize" -}}
{{- if .Values.autoscaling.enabled }}
{{- int .Values.autoscaling.maxReplicas }}
{{- else }}
{{- int .Values.replicaCount }}
{{- end }}
{{- end }}

{{- define "ftps-s3.headlessServiceName" -}}
{{- printf "%s-headless" (include "ftps-s3.fullname" .) }}
{{- end }}

{{/* Cluster mode: every pod's relay listener, in ordinal order, by its stable DNS name in the
headless Service. */}}
{{- define "ftps-s3.clusterPeers" -}}
{{- $fullname := include "ftps-s3.fullname" . }}
{{- $peers := list }}
{{- range $i := until (int (include "ftps-s3.clusterSize" .)) }}
{{- $peers = append $peers (printf "%s-%d.%s.%s.svc.%s:%d" $fullname $i (include "ftps-s3.headlessServiceName" $) $.Release.Namespace $.Values.clusterDomain (int $.Values.containerPorts.relay)) }}
{{- end }}
{{- $peers | toJson }}
{{- end }}

{{- define "ftps-s3.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add (int .Values.preStopSleepSeconds) (int .Values.config.shutdown.grace_seconds) 15 }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
Checks that values.schema.json cannot express. Included by every workload template; fails the
render with a message naming the value.
*/}}
{{- define "ftps-s3.validate" -}}
{{- if not .Values.config.s3.bucket }}
{{- fail "config.s3.bucket is required: the S3 bucket the server stores files in" }}
{{- end }}
{{- if and (not .Values.tls.existingSecret) (not .Values.tls.certManager.enabled) }}
{{- fail "a certificate is required: set tls.existingSecret (a kubernetes.io/tls Secret) or tls.certManager.enabled=true" }}
{{- end }}
{{- if and .Values.tls.existingSecret .Values.tls.certManager.enabled }}
{{- fail "tls.existingSecret and tls.certManager.enabled are exclusive" }}
{{- end }}
{{- if and .Values.tls.certManager.enabled (or (not .Values.tls.certManager.issuerRef.name) (not .Values.tls.certManager.dnsNames)) }}
{{- fail "tls.certManager needs issuerRef.name and at least one dnsNames entry" }}
{{- end }}
{{- if and (not .Values.users.existingSecret) (not .Values.users.usersToml) }}
{{- fail "a users file is required: set users.existingSecret (a Secret with users.toml) or users.usersToml" }}
{{- end }}
{{- if and .Values.users.existingSecret .Values.users.usersToml }}
{{- fail "users.existingSecret and users.usersToml are exclusive" }}
{{- end }}
{{- if and (ne .Values.config.tls.client_auth "none") (not .Values.clientCA.existingSecret) }}
{{- fail (printf "config.tls.client_auth %q needs clientCA.existingSecret: a Secret with the CA bundle that issues client certificates" .Values.config.tls.client_auth) }}
{{- end }}
{{- if and (include "ftps-s3.eventsEnabled" .) (not .Values.eventsSecret.existingSecret) }}
{{- fail "config.events.webhook_url needs eventsSecret.existingSecret: a Secret with the key events are signed with" }}
{{- end }}
{{- if and .Values.config.listeners.proxy_protocol (not .Values.config.listeners.trusted_proxies) }}
{{- fail "config.listeners.proxy_protocol needs config.listeners.trusted_proxies: the load balancer's source CIDRs" }}
{{- end }}
{{- $range := include "ftps-s3.passiveRange" . | fromJson }}
{{- if or (lt (int $range.first) 1024) (gt (int $range.first) (int $range.last)) (gt (int $range.last) 65535) }}
{{- fail (printf "config.passive.ports %q: need first-last with 1024 <= first <= last <= 65535" .Values.config.passive.ports) }}
{{- end }}
{{- $ports := list (int .Values.containerPorts.explicit) (int .Values.containerPorts.implicit) (int .Values.containerPorts.admin) (int .Values.containerPorts.relay) }}
{{- range $ports }}
{{- if and (ge . (int $range.first)) (le . (int $range.last)) }}
{{- fail (printf "containerPorts: port %d lies inside config.passive.ports %s" . $.Values.config.passive.ports) }}
{{- end }}
{{- end }}
{{- if le (int (include "ftps-s3.terminationGracePeriodSeconds" .)) (add (int .Values.preStopSleepSeconds) (int .Values.config.shutdown.grace_seconds)) }}
{{- fail "terminationGracePeriodSeconds must exceed preStopSleepSeconds + config.shutdown.grace_seconds, or Kubernetes kills transfers the server would still let finish" }}
{{- end }}
{{- $annotations := .Values.service.annotations | default dict }}
{{- if and (eq (get $annotations "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type" | default "") "ip") (lt (int .Values.preStopSleepSeconds) 30) }}
{{- fail (printf "preStopSleepSeconds %d is too short for an NLB with IP targets: it keeps sending new connections to a deregistering pod for tens of seconds; use at least 30" (int .Values.preStopSleepSeconds)) }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- if and (kindIs "invalid" .Values.autoscaling.targetSessionsPerPod) (kindIs "invalid" .Values.autoscaling.targetCPUUtilizationPercentage) (kindIs "invalid" .Values.autoscaling.targetMemoryUtilizationPercentage) }}
{{- fail "autoscaling needs targetSessionsPerPod (recommended), targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) }}
{{- fail "autoscaling.minReplicas exceeds autoscaling.maxReplicas" }}
{{- end }}
{{- end }}
{{- $mode := include "ftps-s3.mode" . }}
{{- if and (eq $mode "deployment") (or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled) }}
{{- fail (printf "mode=deployment with %s: several replicas behind one Service mis-route passive data connections (affinity is per Service port); use mode=auto or mode=cluster (a StatefulSet whose pods relay data connections to each other), or mode=statefulset (one Service per pod)" (ternary "autoscaling" (printf "replicaCount %d" (int .Values.replicaCount)) .Values.autoscaling.enabled)) }}
{{- end }}
{{- if eq $mode "cluster" }}
{{- $n := int (include "ftps-s3.clusterSize" .) }}
{{- $ports := add1 (sub (int $range.last) (int $range.first)) | int }}
{{- if lt $ports $n }}
{{- fail (printf "config.passive.ports %q has %d ports for %d replicas (%s): cluster mode gives every replica a slice of its own, so it needs at least one port per replica" (toString .Values.config.passive.ports) $ports $n (ternary "autoscaling.maxReplicas" "replicaCount" .Values.autoscaling.enabled)) }}
{{- end }}
{{- end }}
{{- if eq $mode "statefulset" }}
{{- if .Values.autoscaling.enabled }}
{{- fail "autoscaling needs mode=auto or mode=cluster: statefulset mode has one Service and one advertised address per pod" }}
{{- end }}
{{- if eq .Values.service.type "NodePort" }}
{{- fail "mode=statefulset needs service.type LoadBalancer or ClusterIP: per-pod Services cannot share node ports" }}
{{- end }}
{{- if and .Values.statefulset.advertiseAddresses (lt (len .Values.statefulset.advertiseAddresses) (int .Values.replicaCount)) }}
{{- fail (printf "statefulset.advertiseAddresses has %d entries for replicaCount %d" (len .Values.statefulset.advertiseAddresses) (int .Values.replicaCount)) }}
{{- end }}
{{- else if .Values.statefulset.advertiseAddresses }}
{{- fail "statefulset.advertiseAddresses needs mode=statefulset (deployment and cluster mode: config.passive.advertise_address)" }}
{{- end }}
{{- end }}

{{/* host:port for a listener, bracketing IPv6 addresses. */}}
{{- define "ftps-s3.listen" -}}
{{- $addr := .root.Values.listenAddress }}
{{- if contains ":" $addr }}
{{- printf "[%s]:%d" $addr (int .port) }}
{{- else }}
{{- printf "%s:%d" $addr (int .port) }}
{{- end }}
{{- end }}

{{/*
The server configuration as one map: the values' `config` (every server key, same names),
deep-merged with the TOML of `extraConfig` (which wins), then the keys the chart owns (listener
addresses, mounted file paths, the admin listener, the advertised address). One map rendered once,
so a key can never appear twice and any server key is settable.
Arguments: dict "root" $ "advertise" "<IPv4 or empty>". Result: the map as JSON.
*/}}
{{- define "ftps-s3.configMap" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $cfg := deepCopy ($v.config | default dict) }}
{{- with $v.extraConfig }}
{{- $extra := fromToml . }}
{{- if hasKey $extra "Error" }}
{{- fail (printf "extraConfig is not valid TOML: %s" (get $extra "Error")) }}
{{- end }}
{{- $cfg = mergeOverwrite $cfg $extra }}
{{- end }}
{{- $tls := dict "cert_file" "/etc/ftps-s3/tls/tls.crt" "key_file" "/etc/ftps-s3/tls/tls.key" }}
{{- if ne (dig "tls" "client_auth" "none" $cfg) "none" }}
{{- $_ := set $tls "client_ca_file" "/etc/ftps-s3/client-ca/ca.crt" }}
{{- end }}
{{- $owned := dict
  "listeners" (dict
    "explicit" (include "ftps-s3.listen" (dict "root" $root "port" $v.containerPorts.explicit))
    "implicit" (include "ftps-s3.listen" (dict "root" $root "port" $v.containerPorts.implicit)))
  "tls" $tls
  "storage" (dict "backend" "s3")
  "auth" (dict "users_file" "/etc/ftps-s3/users/users.toml")
  "admin" (dict "listen" (include "ftps-s3.listen" (dict "root" $root "port" $v.containerPorts.admin))) }}
{{- if include "ftps-s3.eventsEnabled" .root }}
{{- $_ := set $owned "events" (dict "webhook_secret_file" "/etc/ftps-s3/events/secret") }}
{{- end }}
{{- if .advertise }}
{{- $_ := set $owned "passive" (dict "advertise_address" .advertise) }}
{{- else if hasKey ($cfg.passive | default dict) "advertise_address" }}
{{- $_ := unset $cfg.passive "advertise_address" }}
{{- end }}
{{- /* [cluster] is the chart's: peers and listen in cluster mode (the ordinal comes from each pod's
$HOSTNAME, so one file serves every pod), absent otherwise. */}}
{{- $_ := unset $cfg "cluster" }}
{{- if eq (include "ftps-s3.mode" $root) "cluster" }}
{{- $_ := set $owned "cluster" (dict
  "peers" (include "ftps-s3.clusterPeers" $root | fromJsonArray)
  "listen" (include "ftps-s3.listen" (dict "root" $root "port" $v.containerPorts.relay))) }}
{{- end }}
{{- $cfg = mergeOverwrite $cfg $owned }}
{{- /* Without PROXY protocol the server refuses nothing, but an empty list is the default anyway. */}}
{{- if not (dig "listeners" "proxy_protocol" false $cfg) }}
{{- $_ := unset $cfg.listeners "trusted_proxies" }}
{{- end }}
{{- $cfg | toJson }}
{{- end }}

{{/* A TOML value: strings and lists through toJson (valid TOML); whole numbers as integers
(values arrive as float64). */}}
{{- define "ftps-s3.tomlValue" -}}
{{- $k := kindOf . }}
{{- if eq $k "string" }}{{ . | toJson }}
{{- else if eq $k "bool" }}{{ . }}
{{- else if or (eq $k "float64") (eq $k "float32") }}{{ if eq (float64 (int64 .)) (float64 .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else if hasPrefix "int" $k }}{{ . }}
{{- else if eq $k "slice" }}[{{ range $i, $e := . }}{{ if $i }}, {{ end }}{{ include "ftps-s3.tomlValue" $e }}{{ end }}]
{{- else }}{{ fail (printf "config: cannot render a %s as TOML: %v" $k .) }}
{{- end }}
{{- end }}

{{/* A TOML table and its sub-tables. Arguments: dict "name" "<dotted name or empty>" "table" map. */}}
{{- define "ftps-s3.tomlTable" -}}
{{- $t := .table }}
{{- $name := .name }}
{{- if $name }}
[{{ $name }}]
{{- end }}
{{- range $k := keys $t | sortAlpha }}
{{- $x := get $t $k }}
{{- /* null and "" mean "the server's default" (TOML has no null; "" is never a useful value). */}}
{{- if and (not (kindIs "map" $x)) (not (kindIs "invalid" $x)) (ne (toString $x) "") }}
{{ $k }} = {{ include "ftps-s3.tomlValue" $x }}
{{- end }}
{{- end }}
{{- range $k := keys $t | sortAlpha }}
{{- $x := get $t $k }}
{{- if kindIs "map" $x }}
{{ include "ftps-s3.tomlTable" (dict "name" (ternary $k (printf "%s.%s" $name $k) (eq $name "")) "table" $x) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
config.toml. Arguments: dict "root" $ "advertise" "<IPv4 or empty>".
*/}}
{{- define "ftps-s3.configToml" -}}
{{- $cfg := include "ftps-s3.configMap" . | fromJson -}}
# Rendered by the ftps-s3 Helm chart ({{ include "ftps-s3.chart" .root }}); edit values, not this file.
{{- include "ftps-s3.tomlTable" (dict "name" "" "table" $cfg) }}
{{- end }}

{{/* The server's files: config, certificate, users, client CA (the workload and the test hook). */}}
{{- define "ftps-s3.configVolumeMounts" -}}
- name: config
  mountPath: /etc/ftps-s3/config
  readOnly: true
# Whole-directory mounts (no subPath), so renewed secrets reach the pod and the server
# reloads them.
- name: tls
  mountPath: /etc/ftps-s3/tls
  readOnly: true
- name: users
  mountPath: /etc/ftps-s3/users
  readOnly: true
{{- if ne .Values.config.tls.client_auth "none" }}
- name: client-ca
  mountPath: /etc/ftps-s3/client-ca
  readOnly: true
{{- end }}
{{- if include "ftps-s3.eventsEnabled" . }}
- name: events
  mountPath: /etc/ftps-s3/events
  readOnly: true
{{- end }}
{{- end }}

{{/* "true" when upload events are on (config.events.webhook_url set), else "". */}}
{{- define "ftps-s3.eventsEnabled" -}}
{{- if dig "events" "webhook_url" "" (.Values.config | default dict) }}true{{- end }}
{{- end }}

{{- define "ftps-s3.configVolumes" -}}
{{- $fullname := include "ftps-s3.fullname" . -}}
- name: config
  configMap:
    name: {{ $fullname }}-config
    defaultMode: 0444
- name: tls
  secret:
    secretName: {{ include "ftps-s3.tlsSecretName" . }}
    defaultMode: 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
- name: users
  secret:
    secretName: {{ include "ftps-s3.usersSecretName" . }}
    defaultMode: 0440
    items:
      - key: {{ .Values.users.key }}
        path: users.toml
{{- if ne .Values.config.tls.client_auth "none" }}
- name: client-ca
  secret:
    secretName: {{ .Values.clientCA.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.clientCA.key }}
        path: ca.crt
{{- end }}
{{- if include "ftps-s3.eventsEnabled" . }}
- name: events
  secret:
    secretName: {{ .Values.eventsSecret.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.eventsSecret.key }}
        path: secret
{{- end }}
{{- end }}

{{/*
The container's resources: .Values.resources, with the memory request and limit (where not set)
derived from the upload memory budget: config.limits.upload_memory_mib + memoryOverheadMiB.
*/}}
{{- define "ftps-s3.resources" -}}
{{- $r := deepCopy (default (dict) .Values.resources) }}
{{- $budget := int .Values.config.limits.upload_memory_mib }}
{{- $mem := printf "%dMi" (add (ternary $budget 768 (gt $budget 0)) (int .Values.memoryOverheadMiB)) }}
{{- range $kind := list "requests" "limits" }}
{{- $set := default (dict) (get $r $kind) }}
{{- if not (hasKey $set "memory") }}
{{- $_ := set $set "memory" $mem }}
{{- end }}
{{- $_ := set $r $kind $set }}
{{- end }}
{{- toYaml $r }}
{{- end }}
