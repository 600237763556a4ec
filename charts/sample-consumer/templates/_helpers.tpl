{{/*
Chart name, truncated to the DNS label limit.
*/}}
{{- define "sample-consumer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-sample-consumer, or the release name alone
when it already contains the chart name.
*/}}
{{- define "sample-consumer.fullname" -}}
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

{{- define "sample-consumer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the lifetime of the release (never add versions here).
*/}}
{{- define "sample-consumer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sample-consumer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "sample-consumer.labels" -}}
helm.sh/chart: {{ include "sample-consumer.chart" . }}
{{ include "sample-consumer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: consumer
app.kubernetes.io/part-of: iov-platform
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels of the `helm test` Pods: deliberately NOT the selector labels, so the
Service and the PodDisruptionBudget never select a test Pod.
*/}}
{{- define "sample-consumer.testLabels" -}}
helm.sh/chart: {{ include "sample-consumer.chart" . }}
app.kubernetes.io/name: {{ include "sample-consumer.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
app.kubernetes.io/part-of: iov-platform
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "sample-consumer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sample-consumer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sample-consumer.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Port number of a Go listen address such as ":8080" or "0.0.0.0:8080".
*/}}
{{- define "sample-consumer.portOf" -}}
{{- $port := regexFind "[0-9]+$" . -}}
{{- if not $port }}{{ fail (printf "sample-consumer: cannot find a port in listen address %q" .) }}{{ end -}}
{{- $port -}}
{{- end }}

{{- define "sample-consumer.httpContainerPort" -}}
{{- include "sample-consumer.portOf" .Values.config.http.listenAddress }}
{{- end }}

{{/*
Kafka bootstrap servers: explicit config > global override > in-chart Strimzi
cluster (<kafkaClusterName or release>-kafka-bootstrap:9092, the plain listener
created by the iov-platform umbrella chart, or :9093, its TLS listener, with kafkaAuth).
*/}}
{{- define "sample-consumer.kafkaBootstrapServers" -}}
{{- $g := (.Values.global).iov | default dict -}}
{{- $cluster := $g.kafkaClusterName | default .Release.Name -}}
{{- $port := ternary 9093 9092 (ne (include "sample-consumer.kafkaAuthType" .) "") -}}
{{- coalesce .Values.config.kafka.bootstrapServers $g.kafkaBootstrapServers (printf "%s-kafka-bootstrap:%d" $cluster $port) -}}
{{- end }}

{{/*
Schema registry URL: explicit config > global override > in-chart registry (https with
global.iov.schemaRegistryTLS).
*/}}
{{- define "sample-consumer.registryUrl" -}}
{{- $g := (.Values.global).iov | default dict -}}
{{- $scheme := "http" }}{{ if $g.schemaRegistryTLS }}{{ $scheme = "https" }}{{ end -}}
{{- coalesce .Values.config.registry.url $g.schemaRegistryUrl (printf "%s://%s-schema-registry:8081" $scheme .Release.Name) -}}
{{- end }}

{{/*
Nanoseconds in a Go duration made of integer ns/us/µs/ms/s/m/h parts ("200ms", "1m30s").
*/}}
{{- define "sample-consumer.durationNanos" -}}
{{- $d := toString . -}}
{{- if not (regexMatch "^([0-9]+(ns|us|µs|ms|s|m|h))+$" $d) }}{{ fail (printf "sample-consumer: %q is not a Go duration like 200ms, 10s or 1m30s" $d) }}{{ end -}}
{{- $units := dict "ns" 1 "us" 1000 "µs" 1000 "ms" 1000000 "s" 1000000000 "m" 60000000000 "h" 3600000000000 -}}
{{- $total := 0 -}}
{{- range regexFindAll "[0-9]+(ns|us|µs|ms|s|m|h)" $d -1 -}}
{{- $n := regexFind "^[0-9]+" . -}}
{{- $total = add $total (mul ($n | atoi) (get $units (trimPrefix $n .))) -}}
{{- end -}}
{{- $total -}}
{{- end }}

{{/*
Fail on consumer settings the service would reject at start that values.schema.json
cannot express: the dead-letter topic among the consumed topics, and handler
retries that back off longer in total than max.poll.interval.ms (the consumer
would be thrown out of its group while retrying one record).
*/}}
{{- define "sample-consumer.validate" -}}
{{- $k := .Values.config.kafka -}}
{{- with $k.deadLetterTopic -}}
{{- if has . $k.topics }}{{ fail (printf "sample-consumer: config.kafka.deadLetterTopic %q must not be one of config.kafka.topics (dead letters would be consumed again)" .) }}{{ end -}}
{{- if has . (list "." "..") }}{{ fail (printf "sample-consumer: config.kafka.deadLetterTopic %q is not a valid Kafka topic name" .) }}{{ end -}}
{{- end -}}
{{- $h := .Values.config.handler | default dict -}}
{{- $attempts := ($h.maxAttempts | default 5) | int -}}
{{- $init := include "sample-consumer.durationNanos" ($h.initialBackoff | default "200ms") | int64 -}}
{{- $max := include "sample-consumer.durationNanos" ($h.maxBackoff | default "10s") | int64 -}}
{{- if le $init 0 }}{{ fail "sample-consumer: config.handler.initialBackoff must be positive" }}{{ end -}}
{{- if lt $max $init }}{{ fail (printf "sample-consumer: config.handler.maxBackoff (%s) must not be below config.handler.initialBackoff (%s)" ($h.maxBackoff | default "10s") ($h.initialBackoff | default "200ms")) }}{{ end -}}
{{- $limitMs := 300000 -}}
{{- with index ($k.properties | default dict) "max.poll.interval.ms" -}}
{{- if not (regexMatch "^[1-9][0-9]*$" (toString .)) }}{{ fail (printf "sample-consumer: config.kafka.properties.max.poll.interval.ms %q: want a positive number of milliseconds" (toString .)) }}{{ end -}}
{{- $limitMs = atoi (toString .) -}}
{{- end -}}
{{- $d := $init -}}
{{- $total := 0 -}}
{{- range until (sub $attempts 1 | int) -}}
{{- $total = add $total (min $d $max) -}}
{{- if lt $d $max }}{{ $d = mul $d 2 }}{{ end -}}
{{- end -}}
{{- if ge (int64 $total) (mul $limitMs 1000000) }}{{ fail (printf "sample-consumer: config.handler: %d attempts back off up to %dms in total, not below max.poll.interval.ms (%dms); lower config.handler.maxAttempts or config.handler.maxBackoff" $attempts (div $total 1000000) $limitMs) }}{{ end -}}
{{- end }}

{{/*
The effective service configuration (config.yaml).
*/}}
{{- define "sample-consumer.config" -}}
{{- include "sample-consumer.validate" . -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $_ := set $cfg.kafka "bootstrapServers" (include "sample-consumer.kafkaBootstrapServers" .) -}}
{{- $auth := include "sample-consumer.kafkaAuthConfig" . | fromYaml -}}
{{- with $auth.properties }}{{ $_ := set $cfg.kafka "properties" (merge ($cfg.kafka.properties | default dict) .) }}{{ end -}}
{{- with $auth.propertyFiles }}{{ $_ := set $cfg.kafka "propertyFiles" (merge ($cfg.kafka.propertyFiles | default dict) .) }}{{ end -}}
{{- if include "sample-consumer.registryCASecret" . }}{{ $_ := set $cfg.registry "caFile" (printf "/etc/registry-ca/%s" .Values.registryAuth.caKey) }}{{ end -}}
{{- $_ := set $cfg.registry "url" (include "sample-consumer.registryUrl" .) -}}
{{- toYaml $cfg -}}
{{- end }}

{{/*
Topology spread constraints with the selector labels injected where missing.
*/}}
{{- define "sample-consumer.topologySpreadConstraints" -}}
{{- $out := list -}}
{{- range .Values.topologySpreadConstraints -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "sample-consumer.selectorLabels" $ | fromYaml)) -}}
{{- end -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- toYaml $out -}}
{{- end }}

{{/*
Kafka authentication with the Secrets Strimzi generates: kafkaAuth.type, default
global.iov.kafkaAuthentication (the umbrella's switch): "" (none, plaintext), scram-sha-512
or tls (mutual TLS).
*/}}
{{- define "sample-consumer.kafkaAuthType" -}}
{{- (.Values.kafkaAuth).type | default (((.Values.global).iov).kafkaAuthentication) | default "" -}}
{{- end }}

{{/*
The KafkaUser this service authenticates as, and the name of the Secret Strimzi's User
Operator writes for it: kafkaAuth.user, default <release>-sample-consumer (the umbrella's KafkaUser).
*/}}
{{- define "sample-consumer.kafkaUser" -}}
{{- (.Values.kafkaAuth).user | default (printf "%s-sample-consumer" .Release.Name) -}}
{{- end }}

{{/*
librdkafka settings for kafkaAuth, as {properties, propertyFiles}: TLS trusting the cluster
CA (Secret <cluster>-cluster-ca-cert, key ca.crt, mounted at /etc/kafka-cluster-ca), and
SASL SCRAM-SHA-512 with the password file of the user's Secret (key password) or the user's
certificate and key (keys user.crt, user.key), mounted at /etc/kafka-user. Empty without.
*/}}
{{- define "sample-consumer.kafkaAuthConfig" -}}
{{- $type := include "sample-consumer.kafkaAuthType" . -}}
{{- $props := dict -}}
{{- $files := dict -}}
{{- if eq $type "scram-sha-512" -}}
{{- $props = dict "security.protocol" "SASL_SSL" "sasl.mechanisms" "SCRAM-SHA-512" "sasl.username" (include "sample-consumer.kafkaUser" .) "ssl.ca.location" "/etc/kafka-cluster-ca/ca.crt" -}}
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
{{- define "sample-consumer.secretVolumeMounts" -}}
{{- if include "sample-consumer.kafkaAuthType" . }}
- name: kafka-cluster-ca
  mountPath: /etc/kafka-cluster-ca
  readOnly: true
- name: kafka-user
  mountPath: /etc/kafka-user
  readOnly: true
{{- end }}
{{- if include "sample-consumer.registryCASecret" . }}
- name: registry-ca
  mountPath: /etc/registry-ca
  readOnly: true
{{- end -}}
{{- end }}

{{- define "sample-consumer.secretVolumes" -}}
{{- $type := include "sample-consumer.kafkaAuthType" . -}}
{{- if $type -}}
{{- $g := (.Values.global).iov | default dict -}}
- name: kafka-cluster-ca
  secret:
    secretName: {{ (.Values.kafkaAuth).caSecret | default (printf "%s-cluster-ca-cert" ($g.kafkaClusterName | default .Release.Name)) }}
    items:
      - {key: ca.crt, path: ca.crt}
- name: kafka-user
  secret:
    secretName: {{ include "sample-consumer.kafkaUser" . }}
    items:
      {{- if eq $type "tls" }}
      - {key: user.crt, path: user.crt}
      - {key: user.key, path: user.key}
      {{- else }}
      - {key: password, path: password}
      {{- end }}
{{- end }}
{{- with include "sample-consumer.registryCASecret" . }}
- name: registry-ca
  secret:
    secretName: {{ . }}
    items:
      - {key: {{ $.Values.registryAuth.caKey }}, path: {{ $.Values.registryAuth.caKey }}}
{{- end -}}
{{- end }}

{{/*
Secret with the CA certificate of an https schema registry: registryAuth.caSecret, default
global.iov.schemaRegistryCASecret, else, with global.iov.schemaRegistryTLS and the umbrella's
in-chart registry, that registry's certificate Secret <release>-schema-registry-tls (its
ca.crt). Mounted at /etc/registry-ca (no subPath); the config's registry.caFile points at
its key registryAuth.caKey.
*/}}
{{- define "sample-consumer.registryCASecret" -}}
{{- $g := (.Values.global).iov | default dict -}}
{{- $inChart := "" -}}
{{- if and $g.schemaRegistryTLS (not (or .Values.config.registry.url $g.schemaRegistryUrl)) }}{{ $inChart = printf "%s-schema-registry-tls" .Release.Name }}{{ end -}}
{{- (.Values.registryAuth).caSecret | default $g.schemaRegistryCASecret | default $inChart -}}
{{- end }}
