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
{{- if and .Values.config.listeners.proxy_protocol (not .Values.config.listeners.trusted_proxies) }}
{{- fail "config.listeners.proxy_protocol needs config.listeners.trusted_proxies: the load balancer's source CIDRs" }}
{{- end }}
{{- $range := include "ftps-s3.passiveRange" . | fromJson }}
{{- if or (lt (int $range.first) 1024) (gt (int $range.first) (int $range.last)) (gt (int $range.last) 65535) }}
{{- fail (printf "config.passive.ports %q: need first-last with 1024 <= first <= last <= 65535" .Values.config.passive.ports) }}
{{- end }}
{{- $ports := list (int .Values.containerPorts.explicit) (int .Values.containerPorts.implicit) (int .Values.containerPorts.admin) }}
{{- range $ports }}
{{- if and (ge . (int $range.first)) (le . (int $range.last)) }}
{{- fail (printf "containerPorts: port %d lies inside config.passive.ports %s" . $.Values.config.passive.ports) }}
{{- end }}
{{- end }}
{{- if le (int (include "ftps-s3.terminationGracePeriodSeconds" .)) (add (int .Values.preStopSleepSeconds) (int .Values.config.shutdown.grace_seconds)) }}
{{- fail "terminationGracePeriodSeconds must exceed preStopSleepSeconds + config.shutdown.grace_seconds, or Kubernetes kills transfers the server would still let finish" }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- if and (kindIs "invalid" .Values.autoscaling.targetCPUUtilizationPercentage) (kindIs "invalid" .Values.autoscaling.targetMemoryUtilizationPercentage) }}
{{- fail "autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) }}
{{- fail "autoscaling.minReplicas exceeds autoscaling.maxReplicas" }}
{{- end }}
{{- end }}
{{- if eq .Values.mode "statefulset" }}
{{- if .Values.autoscaling.enabled }}
{{- fail "autoscaling is for mode=deployment: statefulset mode has one Service and one advertised address per pod" }}
{{- end }}
{{- if eq .Values.service.type "NodePort" }}
{{- fail "mode=statefulset needs service.type LoadBalancer or ClusterIP: per-pod Services cannot share node ports" }}
{{- end }}
{{- if and .Values.statefulset.advertiseAddresses (lt (len .Values.statefulset.advertiseAddresses) (int .Values.replicaCount)) }}
{{- fail (printf "statefulset.advertiseAddresses has %d entries for replicaCount %d" (len .Values.statefulset.advertiseAddresses) (int .Values.replicaCount)) }}
{{- end }}
{{- else if .Values.statefulset.advertiseAddresses }}
{{- fail "statefulset.advertiseAddresses needs mode=statefulset (deployment mode: config.passive.advertise_address)" }}
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
config.toml. Arguments: dict "root" $ "advertise" "<IPv4 or empty>".
Strings go through toJson: a JSON string is a valid TOML basic string.
*/}}
{{- define "ftps-s3.configToml" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $c := $v.config -}}
# Rendered by the ftps-s3 Helm chart ({{ include "ftps-s3.chart" $root }}); edit values, not this file.

[listeners]
explicit = {{ include "ftps-s3.listen" (dict "root" $root "port" $v.containerPorts.explicit) | toJson }}
implicit = {{ include "ftps-s3.listen" (dict "root" $root "port" $v.containerPorts.implicit) | toJson }}
require_tls = {{ $c.listeners.require_tls }}
{{- if $c.listeners.proxy_protocol }}
proxy_protocol = true
trusted_proxies = {{ $c.listeners.trusted_proxies | toJson }}
{{- end }}

[tls]
cert_file = "/etc/ftps-s3/tls/tls.crt"
key_file = "/etc/ftps-s3/tls/tls.key"
allow_ccc = {{ $c.tls.allow_ccc }}
client_auth = {{ $c.tls.client_auth | toJson }}
{{- if ne $c.tls.client_auth "none" }}
client_ca_file = "/etc/ftps-s3/client-ca/ca.crt"
{{- end }}
reload_interval_secs = {{ int $c.tls.reload_interval_secs }}

[passive]
ports = {{ toString $c.passive.ports | toJson }}
{{- with .advertise }}
advertise_address = {{ . | toJson }}
{{- end }}

[storage]
backend = "s3"

[s3]
bucket = {{ $c.s3.bucket | toJson }}
region = {{ $c.s3.region | toJson }}
{{- with $c.s3.endpoint }}
endpoint = {{ . | toJson }}
{{- end }}
force_path_style = {{ $c.s3.force_path_style }}
part_size_mib = {{ int $c.s3.part_size_mib }}
upload_concurrency = {{ int $c.s3.upload_concurrency }}
checksums = {{ $c.s3.checksums | toJson }}
max_attempts = {{ int $c.s3.max_attempts }}
listing_times = {{ $c.s3.listing_times }}

[auth]
users_file = "/etc/ftps-s3/users/users.toml"
failure_delay_ms = {{ int $c.auth.failure_delay_ms }}
reload_interval_secs = {{ int $c.auth.reload_interval_secs }}

[limits]
max_line_length = {{ int $c.limits.max_line_length }}
control_idle_timeout_secs = {{ int $c.limits.control_idle_timeout_secs }}
data_connect_timeout_secs = {{ int $c.limits.data_connect_timeout_secs }}
data_idle_timeout_secs = {{ int $c.limits.data_idle_timeout_secs }}
tls_handshake_timeout_secs = {{ int $c.limits.tls_handshake_timeout_secs }}

[shutdown]
grace_seconds = {{ int $c.shutdown.grace_seconds }}

[log]
format = {{ $c.log.format | toJson }}
level = {{ $c.log.level | toJson }}

[admin]
listen = {{ include "ftps-s3.listen" (dict "root" $root "port" $v.containerPorts.admin) | toJson }}
{{- with $v.extraConfig }}

{{ . }}
{{- end }}
{{- end }}
