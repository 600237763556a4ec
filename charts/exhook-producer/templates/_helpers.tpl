{{/*
Chart name, truncated to the DNS label limit.
*/}}
{{- define "exhook-producer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-exhook-producer, or the release name alone
when it already contains the chart name.
*/}}
{{- define "exhook-producer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "exhook-producer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the lifetime of the release (never add versions here).
*/}}
{{- define "exhook-producer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "exhook-producer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "exhook-producer.labels" -}}
helm.sh/chart: {{ include "exhook-producer.chart" . }}
{{ include "exhook-producer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: exhook
app.kubernetes.io/part-of: iov-platform
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels of Pods beside the producer (`helm test` Pods, the schema Job): deliberately NOT
the selector labels, so the Service and the PodDisruptionBudget never select them.
Usage: include "exhook-producer.sideLabels" (list . "test" "test") -> name <chart name>-test.
*/}}
{{- define "exhook-producer.sideLabels" -}}
{{- $ := index . 0 -}}
helm.sh/chart: {{ include "exhook-producer.chart" $ }}
app.kubernetes.io/name: {{ include "exhook-producer.name" $ }}-{{ index . 1 }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 2 }}
app.kubernetes.io/part-of: iov-platform
app.kubernetes.io/managed-by: {{ $.Release.Service }}
{{- end }}

{{- define "exhook-producer.testLabels" -}}
{{ include "exhook-producer.sideLabels" (list . "test" "test") }}
{{- end }}

{{- define "exhook-producer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "exhook-producer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "exhook-producer.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Port number of a Go listen address such as ":9000" or "0.0.0.0:9000".
*/}}
{{- define "exhook-producer.portOf" -}}
{{- $port := regexFind "[0-9]+$" . -}}
{{- if not $port }}{{ fail (printf "exhook-producer: cannot find a port in listen address %q" .) }}{{ end -}}
{{- $port -}}
{{- end }}

{{- define "exhook-producer.grpcContainerPort" -}}
{{- include "exhook-producer.portOf" .Values.config.grpc.listenAddress }}
{{- end }}

{{- define "exhook-producer.httpContainerPort" -}}
{{- include "exhook-producer.portOf" .Values.config.http.listenAddress }}
{{- end }}

{{/*
Kafka bootstrap servers: explicit config > global override > in-chart Strimzi
cluster (<kafkaClusterName or release>-kafka-bootstrap:9092, the plain listener
created by the iov-platform umbrella chart, or :9093, its TLS listener, with kafkaAuth).
*/}}
{{- define "exhook-producer.kafkaBootstrapServers" -}}
{{- $g := (.Values.global).iov | default dict -}}
{{- $cluster := $g.kafkaClusterName | default .Release.Name -}}
{{- $port := ternary 9093 9092 (ne (include "exhook-producer.kafkaAuthType" .) "") -}}
{{- coalesce .Values.config.kafka.bootstrapServers $g.kafkaBootstrapServers (printf "%s-kafka-bootstrap:%d" $cluster $port) -}}
{{- end }}

{{/*
Schema registry URL: explicit config > global override > in-chart registry (https with
global.iov.schemaRegistryTLS).
*/}}
{{- define "exhook-producer.registryUrl" -}}
{{- $g := (.Values.global).iov | default dict -}}
{{- $scheme := "http" }}{{ if $g.schemaRegistryTLS }}{{ $scheme = "https" }}{{ end -}}
{{- coalesce .Values.config.registry.url $g.schemaRegistryUrl (printf "%s://%s-schema-registry:8081" $scheme .Release.Name) -}}
{{- end }}

{{/*
REGISTRY_USERNAME / REGISTRY_PASSWORD from registryAuth.existingSecret (nothing without
one): the producer's pods and the schema Job read the registry credentials the same way.
*/}}
{{- define "exhook-producer.registryAuthEnv" -}}
{{- with .Values.registryAuth.existingSecret -}}
- name: REGISTRY_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.registryAuth.usernameKey }}
- name: REGISTRY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.registryAuth.passwordKey }}
{{- end -}}
{{- end }}

{{/*
"true" when the registry URL is the umbrella's in-chart registry (no config.registry.url,
no global.iov.schemaRegistryUrl): it is created by this release, so it does not exist
before install.
*/}}
{{- define "exhook-producer.registryInRelease" -}}
{{- $g := (.Values.global).iov | default dict -}}
{{- if not (or .Values.config.registry.url $g.schemaRegistryUrl) }}true{{ end -}}
{{- end }}

{{/*
Seconds in a Go duration made of h/m/s units (e.g. "20s", "1m30s").
*/}}
{{- define "exhook-producer.durationSeconds" -}}
{{- $d := toString . -}}
{{- if not (regexMatch "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$" $d) }}{{ fail (printf "exhook-producer: %q is not a duration like 20s, 1m or 1m30s" $d) }}{{ end -}}
{{- $h := regexFind "[0-9]+h" $d | trimSuffix "h" | default "0" | atoi -}}
{{- $m := regexFind "[0-9]+m" $d | trimSuffix "m" | default "0" | atoi -}}
{{- $s := regexFind "[0-9]+s" $d | trimSuffix "s" | default "0" | atoi -}}
{{- add (mul $h 3600) (mul $m 60) $s -}}
{{- end }}

{{/*
preStop sleep seconds (0 when no sleep action is configured).
*/}}
{{- define "exhook-producer.preStopSleepSeconds" -}}
{{- $ps := (.Values.lifecycle).preStop | default dict -}}
{{- (($ps.sleep | default dict).seconds | default 0) | int -}}
{{- end }}

{{/*
terminationGracePeriodSeconds: explicit (validated) or drain + preStop + 10s.
*/}}
{{- define "exhook-producer.terminationGracePeriodSeconds" -}}
{{- $drain := include "exhook-producer.durationSeconds" .Values.config.shutdown.drainTimeout | int -}}
{{- $min := add $drain (include "exhook-producer.preStopSleepSeconds" . | int) -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $min 10 -}}
{{- else -}}
{{- $tgp := .Values.terminationGracePeriodSeconds | int -}}
{{- if le $tgp $min }}{{ fail (printf "exhook-producer: terminationGracePeriodSeconds (%d) must exceed shutdown.drainTimeout + preStop sleep (%ds)" $tgp $min) }}{{ end -}}
{{- $tgp -}}
{{- end -}}
{{- end }}

{{/*
Fail on route problems JSON schema cannot express: duplicate names, MQTT filter
syntax, topic-segment keys that point outside the filter.
*/}}
{{- define "exhook-producer.validateRoutes" -}}
{{- $seen := dict -}}
{{- range $i, $r := .Values.config.routes -}}
{{- if hasKey $seen $r.name }}{{ fail (printf "exhook-producer: duplicate route name %q" $r.name) }}{{ end -}}
{{- $_ := set $seen $r.name true -}}
{{- $levels := splitList "/" $r.filter -}}
{{- range $j, $lvl := $levels -}}
{{- if and (contains "#" $lvl) (or (ne $lvl "#") (ne (add1 $j) (len $levels))) }}{{ fail (printf "exhook-producer: route %q: '#' must be the last level of the filter %q" $r.name $r.filter) }}{{ end -}}
{{- if and (contains "+" $lvl) (ne $lvl "+") }}{{ fail (printf "exhook-producer: route %q: '+' must occupy a whole level in %q" $r.name $r.filter) }}{{ end -}}
{{- end -}}
{{- if eq $r.key.from "topic-segment" -}}
{{- $fixed := len $levels -}}
{{- if eq (last $levels) "#" }}{{ $fixed = sub $fixed 1 }}{{ end -}}
{{- if ge (int $r.key.segment) $fixed }}{{ fail (printf "exhook-producer: route %q: key segment %d is outside the filter %q (levels 0..%d)" $r.name (int $r.key.segment) $r.filter (sub $fixed 1)) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
"true" when a route uses delivery: spool.
*/}}
{{- define "exhook-producer.usesSpool" -}}
{{- $uses := false -}}
{{- range .Values.config.routes }}{{ if eq .delivery "spool" }}{{ $uses = true }}{{ end }}{{ end -}}
{{- if $uses }}true{{ end -}}
{{- end }}

{{/*
"true" when the producer runs as a StatefulSet with a spool PVC per pod: a route
uses delivery: spool, or persistence.enabled forces it.
*/}}
{{- define "exhook-producer.persistent" -}}
{{- if or (include "exhook-producer.usesSpool" .) (.Values.persistence).enabled }}true{{ end -}}
{{- end }}

{{/*
Governing headless Service of the StatefulSet: <fullname>-headless.
*/}}
{{- define "exhook-producer.headlessServiceName" -}}
{{- printf "%s-headless" (include "exhook-producer.fullname" . | trunc 54 | trimSuffix "-") -}}
{{- end }}

{{/*
Bytes in a Kubernetes quantity made of an integer and an optional Ki/Mi/Gi/Ti/Pi
(binary) or k/M/G/T/P (decimal) suffix, e.g. "2Gi" -> 2147483648.
Usage: include "exhook-producer.quantityBytes" (list "persistence.size" "2Gi")
*/}}
{{- define "exhook-producer.quantityBytes" -}}
{{- $what := index . 0 -}}
{{- $q := toString (index . 1) -}}
{{- if not (regexMatch "^[0-9]+(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$" $q) }}{{ fail (printf "exhook-producer: %s %q is not a quantity like 512Mi, 2Gi or 1Ti (integer with an optional Ki/Mi/Gi/Ti/Pi or k/M/G/T/P suffix)" $what $q) }}{{ end -}}
{{- $factors := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "P" 1000000000000000 -}}
{{- $unit := regexReplaceAll "^[0-9]+" $q "" -}}
{{- mul (regexFind "^[0-9]+" $q | atoi) (get $factors $unit) -}}
{{- end }}

{{/*
Fail on spool persistence settings that cannot work: no mount point, a spool
limit that does not fit on the volume, a StatefulSet name too long for the
controller-revision-hash pod label.
*/}}
{{- define "exhook-producer.validatePersistence" -}}
{{- $p := .Values.persistence -}}
{{- $spool := .Values.config.spool | default dict -}}
{{- $size := include "exhook-producer.quantityBytes" (list "persistence.size" $p.size) | int64 -}}
{{- /* the service's default spool.maxBytes is 1 GiB */ -}}
{{- $max := (hasKey $spool "maxBytes" | ternary $spool.maxBytes 1073741824) | int64 -}}
{{- if ge $max $size }}{{ fail (printf "exhook-producer: config.spool.maxBytes (%d bytes%s) must be below persistence.size (%s = %d bytes), otherwise the volume fills up before the spool's own limit applies; raise persistence.size or lower config.spool.maxBytes" $max (hasKey $spool "maxBytes" | ternary "" ", the service default") (toString $p.size) $size) }}{{ end -}}
{{- $name := include "exhook-producer.fullname" . -}}
{{- if gt (len $name) 52 }}{{ fail (printf "exhook-producer: the StatefulSet name %q is longer than 52 characters (Kubernetes appends a revision hash to it in a pod label); set fullnameOverride" $name) }}{{ end -}}
{{- end }}

{{/*
The effective service configuration (config.yaml).
*/}}
{{- define "exhook-producer.config" -}}
{{- include "exhook-producer.validateRoutes" . -}}
{{- if and (include "exhook-producer.usesSpool" .) (not (.Values.config.spool).dir) }}{{ fail "exhook-producer: config.spool.dir is required when a route uses delivery: spool" }}{{ end -}}
{{- if and (.Values.persistence).enabled (not (.Values.config.spool).dir) }}{{ fail "exhook-producer: config.spool.dir is required with persistence.enabled (the spool PVC is mounted there)" }}{{ end -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $_ := set $cfg.kafka "bootstrapServers" (include "exhook-producer.kafkaBootstrapServers" .) -}}
{{- $auth := include "exhook-producer.kafkaAuthConfig" . | fromYaml -}}
{{- with $auth.properties }}{{ $_ := set $cfg.kafka "properties" (merge ($cfg.kafka.properties | default dict) .) }}{{ end -}}
{{- with $auth.propertyFiles }}{{ $_ := set $cfg.kafka "propertyFiles" (merge ($cfg.kafka.propertyFiles | default dict) .) }}{{ end -}}
{{- if include "exhook-producer.registryCASecret" . }}{{ $_ := set $cfg.registry "caFile" (printf "/etc/registry-ca/%s" .Values.registryAuth.caKey) }}{{ end -}}
{{- $_ := set $cfg.registry "url" (include "exhook-producer.registryUrl" .) -}}
{{- if include "exhook-producer.grpcTLS" . -}}
{{- $tls := deepCopy ($cfg.grpc.tls | default dict) -}}
{{- $dir := .Values.grpc.tls.mountPath -}}
{{- $_ := set $tls "certFile" (printf "%s/tls.crt" $dir) -}}
{{- $_ := set $tls "keyFile" (printf "%s/tls.key" $dir) -}}
{{- if .Values.grpc.tls.mtls -}}
{{- $_ := set $tls "clientCAFile" (printf "%s/ca.crt" (include "exhook-producer.grpcClientCADir" .)) -}}
{{- end -}}
{{- $_ := set $cfg.grpc "tls" $tls -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end }}

{{/*
Topology spread constraints with the selector labels injected where missing.
*/}}
{{- define "exhook-producer.topologySpreadConstraints" -}}
{{- $out := list -}}
{{- range .Values.topologySpreadConstraints -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "exhook-producer.selectorLabels" $ | fromYaml)) -}}
{{- end -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- toYaml $out -}}
{{- end }}

{{/*
gRPC listener TLS (grpc.tls): "true" when enabled, after checking that exactly one source
of the certificate is configured.
*/}}
{{- define "exhook-producer.grpcTLS" -}}
{{- $t := (.Values.grpc).tls | default dict -}}
{{- if $t.enabled -}}
{{- $cm := ($t.certManager | default dict).enabled -}}
{{- if and $cm $t.existingSecret }}{{ fail "exhook-producer: grpc.tls: set either certManager.enabled or existingSecret, not both" }}{{ end -}}
{{- if not (or $cm $t.existingSecret) }}{{ fail "exhook-producer: grpc.tls.enabled needs a certificate: set grpc.tls.certManager.enabled=true (with certManager.issuerRef.name) or grpc.tls.existingSecret (a Secret with tls.crt, tls.key and ca.crt)" }}{{ end -}}
{{- if and $cm (not ($t.certManager.issuerRef | default dict).name) }}{{ fail "exhook-producer: grpc.tls.certManager.issuerRef.name is required (the Issuer or ClusterIssuer that signs the gRPC certificate)" }}{{ end -}}
true
{{- end -}}
{{- end }}

{{/*
Kafka authentication with the Secrets Strimzi generates: kafkaAuth.type, default
global.iov.kafkaAuthentication (the umbrella's switch): "" (none, plaintext), scram-sha-512
or tls (mutual TLS).
*/}}
{{- define "exhook-producer.kafkaAuthType" -}}
{{- (.Values.kafkaAuth).type | default (((.Values.global).iov).kafkaAuthentication) | default "" -}}
{{- end }}

{{/*
The KafkaUser this service authenticates as, and the name of the Secret Strimzi's User
Operator writes for it: kafkaAuth.user, default <release>-exhook-producer (the umbrella's KafkaUser).
*/}}
{{- define "exhook-producer.kafkaUser" -}}
{{- (.Values.kafkaAuth).user | default (printf "%s-exhook-producer" .Release.Name) -}}
{{- end }}

{{/*
librdkafka settings for kafkaAuth, as {properties, propertyFiles}: TLS trusting the cluster
CA (Secret <cluster>-cluster-ca-cert, key ca.crt, mounted at /etc/kafka-cluster-ca), and
SASL SCRAM-SHA-512 with the password file of the user's Secret (key password) or the user's
certificate and key (keys user.crt, user.key), mounted at /etc/kafka-user. Empty without.
*/}}
{{- define "exhook-producer.kafkaAuthConfig" -}}
{{- $type := include "exhook-producer.kafkaAuthType" . -}}
{{- $props := dict -}}
{{- $files := dict -}}
{{- if eq $type "scram-sha-512" -}}
{{- $props = dict "security.protocol" "SASL_SSL" "sasl.mechanisms" "SCRAM-SHA-512" "sasl.username" (include "exhook-producer.kafkaUser" .) "ssl.ca.location" "/etc/kafka-cluster-ca/ca.crt" -}}
{{- $files = dict "sasl.password" "/etc/kafka-user/password" -}}
{{- else if eq $type "tls" -}}
{{- $props = dict "security.protocol" "SSL" "ssl.ca.location" "/etc/kafka-cluster-ca/ca.crt" "ssl.certificate.location" "/etc/kafka-user/user.crt" "ssl.key.location" "/etc/kafka-user/user.key" -}}
{{- end -}}
{{- toYaml (dict "properties" $props "propertyFiles" $files) -}}
{{- end }}

{{/*
Volume mounts (no subPath, so rotated Secrets reach the pod) and volumes of kafkaAuth and
of the registry CA.
*/}}
{{- define "exhook-producer.secretVolumeMounts" -}}
{{- if include "exhook-producer.kafkaAuthType" . }}
- name: kafka-cluster-ca
  mountPath: /etc/kafka-cluster-ca
  readOnly: true
- name: kafka-user
  mountPath: /etc/kafka-user
  readOnly: true
{{- end }}
{{- if include "exhook-producer.registryCASecret" . }}
- name: registry-ca
  mountPath: /etc/registry-ca
  readOnly: true
{{- end -}}
{{- end }}

{{- define "exhook-producer.secretVolumes" -}}
{{- $type := include "exhook-producer.kafkaAuthType" . -}}
{{- if $type -}}
{{- $g := (.Values.global).iov | default dict -}}
- name: kafka-cluster-ca
  secret:
    secretName: {{ (.Values.kafkaAuth).caSecret | default (printf "%s-cluster-ca-cert" ($g.kafkaClusterName | default .Release.Name)) }}
    items:
      - {key: ca.crt, path: ca.crt}
- name: kafka-user
  secret:
    secretName: {{ include "exhook-producer.kafkaUser" . }}
    items:
      {{- if eq $type "tls" }}
      - {key: user.crt, path: user.crt}
      - {key: user.key, path: user.key}
      {{- else }}
      - {key: password, path: password}
      {{- end }}
{{- end }}
{{- with include "exhook-producer.registryCASecret" . }}
- name: registry-ca
  secret:
    secretName: {{ . }}
    items:
      - {key: {{ $.Values.registryAuth.caKey }}, path: {{ $.Values.registryAuth.caKey }}}
{{- end -}}
{{- end }}

{{/*
Secret holding the gRPC server certificate (tls.crt, tls.key, ca.crt).
*/}}
{{- define "exhook-producer.grpcTLSSecret" -}}
{{- .Values.grpc.tls.existingSecret | default (printf "%s-grpc-tls" (include "exhook-producer.fullname" . | trunc 54 | trimSuffix "-")) -}}
{{- end }}

{{/*
Directory of the client CA (ca.crt): its own mount when grpc.tls.clientCASecret is set,
else the server certificate's directory.
*/}}
{{- define "exhook-producer.grpcClientCADir" -}}
{{- if .Values.grpc.tls.clientCASecret -}}
{{- printf "%s-client-ca" .Values.grpc.tls.mountPath -}}
{{- else -}}
{{- .Values.grpc.tls.mountPath -}}
{{- end -}}
{{- end }}

{{/*
Every DNS name EMQX can dial the producer by: the Service (and the headless Service of the
StatefulSet) as <svc>, <svc>.<ns>, <svc>.<ns>.svc and <svc>.<ns>.svc.<clusterDomain>. YAML list.
*/}}
{{- define "exhook-producer.grpcDNSNames" -}}
{{- $cm := .Values.grpc.tls.certManager -}}
{{- $svcs := list (include "exhook-producer.fullname" .) -}}
{{- if include "exhook-producer.persistent" . }}{{ $svcs = append $svcs (include "exhook-producer.headlessServiceName" .) }}{{ end -}}
{{- $names := list -}}
{{- range $svc := $svcs -}}
{{- $names = concat $names (list $svc (printf "%s.%s" $svc $.Release.Namespace) (printf "%s.%s.svc" $svc $.Release.Namespace) (printf "%s.%s.svc.%s" $svc $.Release.Namespace $cm.clusterDomain)) -}}
{{- end -}}
{{- toYaml (concat $names ($cm.extraDnsNames | default list) | uniq) -}}
{{- end }}

{{/*
Secret with the CA certificate of an https schema registry: registryAuth.caSecret, default
global.iov.schemaRegistryCASecret, else, with global.iov.schemaRegistryTLS and the umbrella's
in-chart registry, that registry's certificate Secret <release>-schema-registry-tls (its
ca.crt). Mounted at /etc/registry-ca (no subPath); the config's registry.caFile points at
its key registryAuth.caKey.
*/}}
{{- define "exhook-producer.registryCASecret" -}}
{{- $g := (.Values.global).iov | default dict -}}
{{- $inChart := "" -}}
{{- if and $g.schemaRegistryTLS (not (or .Values.config.registry.url $g.schemaRegistryUrl)) }}{{ $inChart = printf "%s-schema-registry-tls" .Release.Name }}{{ end -}}
{{- (.Values.registryAuth).caSecret | default $g.schemaRegistryCASecret | default $inChart -}}
{{- end }}
