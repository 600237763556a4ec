{{- define "iov-platform.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of a component owned by this chart: <release>-<component>.
Usage: include "iov-platform.componentName" (list . "schema-registry")
*/}}
{{- define "iov-platform.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" $root.Release.Name (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/*
Selector labels of a component. Usage: include "iov-platform.selectorLabels" (list . "schema-registry")
*/}}
{{- define "iov-platform.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ index . 1 }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
{{- end }}

{{/*
Common labels of a component. Usage: include "iov-platform.labels" (list . "kafka")
*/}}
{{- define "iov-platform.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "iov-platform.chart" $root }}
{{ include "iov-platform.selectorLabels" . }}
app.kubernetes.io/component: {{ index . 1 }}
app.kubernetes.io/part-of: iov-platform
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- end }}

{{/*
Release-wide Helm fullname logic used by the dependency charts:
<release>-<name>, or the release name when it already contains <name>.
Usage: include "iov-platform.depFullname" (dict "Release" .Release "values" $subValues "name" "emqx")
*/}}
{{- define "iov-platform.depFullname" -}}
{{- $v := .values | default dict -}}
{{- if $v.fullnameOverride -}}
{{- $v.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .name $v.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
Service name of the exhook-producer subchart.
*/}}
{{- define "iov-platform.producerFullname" -}}
{{- include "iov-platform.depFullname" (dict "Release" .Release "values" (index .Values "exhook-producer") "name" "exhook-producer") -}}
{{- end }}

{{/*
gRPC Service port of the exhook-producer subchart.
*/}}
{{- define "iov-platform.producerGrpcPort" -}}
{{- ((index .Values "exhook-producer").service | default dict).grpcPort | default 9000 -}}
{{- end }}

{{/*
The EMQX edition this release installs: "emqx" (EMQX 5.8.x, the default), "emqx-enterprise"
(EMQX Enterprise 6.0.x) or "" when neither is enabled (bring your own EMQX).
*/}}
{{- define "iov-platform.emqxKey" -}}
{{- if .Values.emqx.enabled -}}
emqx
{{- else if (index .Values "emqx-enterprise").enabled -}}
emqx-enterprise
{{- end -}}
{{- end }}

{{/*
Values of the enabled EMQX edition (YAML; the emqx section when none is enabled).
*/}}
{{- define "iov-platform.emqxValues" -}}
{{- toYaml (index .Values (include "iov-platform.emqxKey" . | default "emqx")) -}}
{{- end }}

{{- define "iov-platform.emqxFullname" -}}
{{- $key := include "iov-platform.emqxKey" . | default "emqx" -}}
{{- include "iov-platform.depFullname" (dict "Release" .Release "values" (index .Values $key) "name" $key) -}}
{{- end }}

{{/*
Labels of the EMQX pods (both EMQX charts): app.kubernetes.io/name (the chart's name, or its
nameOverride, dots replaced) and app.kubernetes.io/instance.
*/}}
{{- define "iov-platform.emqxPodLabels" -}}
{{- $key := include "iov-platform.emqxKey" . | default "emqx" -}}
{{- $v := index .Values $key | default dict -}}
app.kubernetes.io/name: {{ default $key $v.nameOverride | trunc 63 | replace "." "-" | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "iov-platform.haproxyFullname" -}}
{{- include "iov-platform.depFullname" (dict "Release" .Release "values" .Values.haproxy "name" "haproxy") -}}
{{- end }}

{{/*
Strimzi Kafka cluster name (global.iov.kafkaClusterName or the release name).
*/}}
{{- define "iov-platform.kafkaClusterName" -}}
{{- ((.Values.global).iov).kafkaClusterName | default .Release.Name -}}
{{- end }}

{{/*
Bootstrap servers of the platform Kafka (global override or the in-chart cluster: its TLS
listener on 9093 with global.iov.kafkaAuthentication, else the plain one on 9092).
*/}}
{{- define "iov-platform.kafkaBootstrapServers" -}}
{{- $port := ternary 9093 9092 (ne (include "iov-platform.kafkaAuthentication" .) "") -}}
{{- ((.Values.global).iov).kafkaBootstrapServers | default (printf "%s-kafka-bootstrap:%d" (include "iov-platform.kafkaClusterName" .) $port) -}}
{{- end }}

{{- define "iov-platform.schemaRegistryName" -}}
{{- include "iov-platform.componentName" (list . "schema-registry") -}}
{{- end }}

{{/*
Schema registry URL (global override or the in-chart registry, https with
global.iov.schemaRegistryTLS).
*/}}
{{- define "iov-platform.schemaRegistryUrl" -}}
{{- $scheme := ternary "https" "http" (eq (include "iov-platform.schemaRegistryTLS" .) "true") -}}
{{- ((.Values.global).iov).schemaRegistryUrl | default (printf "%s://%s:%v" $scheme (include "iov-platform.schemaRegistryName" .) .Values.schemaRegistry.service.port) -}}
{{- end }}

{{/*
"true" when the in-chart registry serves HTTPS (schemaRegistry.enabled and
global.iov.schemaRegistryTLS), else "".
*/}}
{{- define "iov-platform.schemaRegistryTLS" -}}
{{- if and .Values.schemaRegistry.enabled ((.Values.global).iov).schemaRegistryTLS }}true{{ end -}}
{{- end }}

{{/*
Headless Service of the registry's StatefulSet (TLS): the pods' DNS names <pod>.<this>.
*/}}
{{- define "iov-platform.schemaRegistryHeadlessName" -}}
{{- printf "%s-headless" (include "iov-platform.schemaRegistryName" . | trunc 54 | trimSuffix "-") -}}
{{- end }}

{{/*
Secret with the registry's keystore.p12, truststore.p12 and ca.crt: schemaRegistry.tls.existingSecret
or the one cert-manager writes, <name>-tls.
*/}}
{{- define "iov-platform.schemaRegistryTLSSecret" -}}
{{- .Values.schemaRegistry.tls.existingSecret | default (printf "%s-tls" (include "iov-platform.schemaRegistryName" . | trunc 59 | trimSuffix "-")) -}}
{{- end }}

{{/*
Every DNS name the registry is reached by: its Service as <svc>, <svc>.<ns>, <svc>.<ns>.svc
and <svc>.<ns>.svc.<clusterDomain> (the services, the schema Job, helm test), and each pod
under the headless Service, *.<headless>.<ns>.svc.<clusterDomain> (host.name: a follower
forwards writes to the leader by that name). YAML list.
*/}}
{{- define "iov-platform.schemaRegistryDNSNames" -}}
{{- $cm := .Values.schemaRegistry.tls.certManager -}}
{{- $svc := include "iov-platform.schemaRegistryName" . -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.schemaRegistry.tls.clusterDomain) -}}
{{- $names = append $names (printf "*.%s.%s.svc.%s" (include "iov-platform.schemaRegistryHeadlessName" .) $ns .Values.schemaRegistry.tls.clusterDomain) -}}
{{- toYaml (concat $names ($cm.extraDnsNames | default list) | uniq) -}}
{{- end }}

{{/*
Topology spread constraints with selector labels injected where missing.
Usage: include "iov-platform.topologySpread" (list . "schema-registry" $constraints)
*/}}
{{- define "iov-platform.topologySpread" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $out := list -}}
{{- range (index . 2) -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "iov-platform.selectorLabels" (list $root $component) | fromYaml)) -}}
{{- end -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- toYaml $out -}}
{{- end }}
