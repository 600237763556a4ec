{{/*
Chart name, truncated to the DNS label limit.
*/}}
{{- define "downlink.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-downlink, or the release name alone
when it already contains the chart name.
*/}}
{{- define "downlink.fullname" -}}
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

{{- define "downlink.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the lifetime of the release (never add versions here).
*/}}
{{- define "downlink.selectorLabels" -}}
app.kubernetes.io/name: {{ include "downlink.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "downlink.labels" -}}
helm.sh/chart: {{ include "downlink.chart" . }}
{{ include "downlink.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: downlink
app.kubernetes.io/part-of: iov-platform
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels of the `helm test` Pods: deliberately NOT the selector labels, so the
Service and the PodDisruptionBudget never select a test Pod.
*/}}
{{- define "downlink.testLabels" -}}
helm.sh/chart: {{ include "downlink.chart" . }}
app.kubernetes.io/name: {{ include "downlink.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
app.kubernetes.io/part-of: iov-platform
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "downlink.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "downlink.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "downlink.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Port number of a Go listen address such as ":8080" or "0.0.0.0:8080".
*/}}
{{- define "downlink.portOf" -}}
{{- $port := regexFind "[0-9]+$" . -}}
{{- if not $port }}{{ fail (printf "downlink: cannot find a port in listen address %q" .) }}{{ end -}}
{{- $port -}}
{{- end }}

{{- define "downlink.httpContainerPort" -}}
{{- include "downlink.portOf" .Values.config.http.listenAddress }}
{{- end }}

{{/*
Kafka bootstrap servers: explicit config > global override > in-chart Strimzi
cluster (<kafkaClusterName or release>-kafka-bootstrap:9092, the plain listener
created by the iov-platform umbrella chart, or :9093, its TLS listener, with kafkaAuth).
*/}}
{{- define "downlink.kafkaBootstrapServers" -}}
{{- $g := (.Values.global).iov | default dict -}}
{{- $cluster := $g.kafkaClusterName | default .Release.Name -}}
{{- $port := ternary 9093 9092 (ne (include "downlink.kafkaAuthType" .) "") -}}
{{- coalesce .Values.config.kafka.bootstrapServers $g.kafkaBootstrapServers (printf "%s-kafka-bootstrap:%d" $cluster $port) -}}
{{- end }}

{{/*
Schema registry URL: explicit config > global override > in-chart registry (https with
global.iov.schemaRegistryTLS).
*/}}
{{- define "downlink.registryUrl" -}}
{{- $g := (.Values.global).iov | default dict -}}
{{- $scheme := "http" }}{{ if $g.schemaRegistryTLS }}{{ $scheme = "https" }}{{ end -}}
{{- coalesce .Values.config.registry.url $g.schemaRegistryUrl (printf "%s://%s-schema-registry:8081" $scheme .Release.Name) -}}
{{- end }}

{{/*
MQTT broker URL: explicit config > the EMQX Service of this release
(mqtt://<release>-emqx:1883, or the release name when it already contains
"emqx": the EMQX chart's fullname rule). The downlink is an internal client and
connects to EMQX directly, not through HAProxy. The iov-platform umbrella
chart fails when this default does not match its EMQX Service.
*/}}
{{- define "downlink.mqttBrokerUrl" -}}
{{- $emqx := ternary .Release.Name (printf "%s-emqx" .Release.Name) (contains "emqx" .Release.Name) | trunc 63 | trimSuffix "-" -}}
{{- .Values.config.mqtt.brokerUrl | default (printf "mqtt://%s:1883" $emqx) -}}
{{- end }}

{{/*
Seconds in a Go duration made of h/m/s units (e.g. "20s", "1m30s").
*/}}
{{- define "downlink.durationSeconds" -}}
{{- $d := toString . -}}
{{- if not (regexMatch "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$" $d) }}{{ fail (printf "downlink: %q is not a duration like 20s, 1m or 1m30s" $d) }}{{ end -}}
{{- $h := regexFind "[0-9]+h" $d | trimSuffix "h" | default "0" | atoi -}}
{{- $m := regexFind "[0-9]+m" $d | trimSuffix "m" | default "0" | atoi -}}
{{- $s := regexFind "[0-9]+s" $d | trimSuffix "s" | default "0" | atoi -}}
{{- add (mul $h 3600) (mul $m 60) $s -}}
{{- end }}

{{/*
terminationGracePeriodSeconds: explicit (validated) or drain + preStop sleep + 10s.
*/}}
{{- define "downlink.terminationGracePeriodSeconds" -}}
{{- $drain := include "downlink.durationSeconds" .Values.config.shutdown.drainTimeout | int -}}
{{- $ps := (.Values.lifecycle).preStop | default dict -}}
{{- $min := add $drain ((($ps.sleep | default dict).seconds | default 0) | int) -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $min 10 -}}
{{- else -}}
{{- $tgp := .Values.terminationGracePeriodSeconds | int -}}
{{- if le $tgp $min }}{{ fail (printf "downlink: terminationGracePeriodSeconds (%d) must exceed shutdown.drainTimeout + preStop sleep (%ds)" $tgp $min) }}{{ end -}}
{{- $tgp -}}
{{- end -}}
{{- end }}

{{/*
Parse an MQTT command/response topic template the way the service does:
a topic name (no + or #, no leading $) in which {vehicle_id} and {command_id}
each fill exactly one whole level. Returns YAML {levels, vehicle, command, filter}
and fails with the offending key otherwise.
Usage: include "downlink.parseTemplate" (list "mqtt.commandTopic" "vehicles/{vehicle_id}/commands/{command_id}")
*/}}
{{- define "downlink.parseTemplate" -}}
{{- $key := index . 0 -}}
{{- $t := toString (index . 1) -}}
{{- if not $t }}{{ fail (printf "downlink: config.%s is required" $key) }}{{ end -}}
{{- if regexMatch "[+#]" $t }}{{ fail (printf "downlink: config.%s %q contains a wildcard (+ or #): commands are published to topic names" $key $t) }}{{ end -}}
{{- if hasPrefix "$" $t }}{{ fail (printf "downlink: config.%s %q starts with $ (reserved for broker topics)" $key $t) }}{{ end -}}
{{- $levels := splitList "/" $t -}}
{{- $vehicle := -1 -}}
{{- $command := -1 -}}
{{- $filter := list -}}
{{- range $i, $l := $levels -}}
{{- if eq $l "{vehicle_id}" -}}
{{- if ge $vehicle 0 }}{{ fail (printf "downlink: config.%s %q: {vehicle_id} appears more than once" $key $t) }}{{ end -}}
{{- $vehicle = $i -}}
{{- $filter = append $filter "+" -}}
{{- else if eq $l "{command_id}" -}}
{{- if ge $command 0 }}{{ fail (printf "downlink: config.%s %q: {command_id} appears more than once" $key $t) }}{{ end -}}
{{- $command = $i -}}
{{- $filter = append $filter "+" -}}
{{- else if regexMatch "[{}]" $l -}}
{{- fail (printf "downlink: config.%s %q: level %q: only {vehicle_id} and {command_id} are allowed, each as a whole level" $key $t $l) -}}
{{- else -}}
{{- $filter = append $filter $l -}}
{{- end -}}
{{- end -}}
{{- if or (lt $vehicle 0) (lt $command 0) }}{{ fail (printf "downlink: config.%s %q must contain {vehicle_id} and {command_id}" $key $t) }}{{ end -}}
{{- toYaml (dict "levels" $levels "vehicle" $vehicle "command" $command "filter" (join "/" $filter)) -}}
{{- end }}

{{/*
Fail on settings the service rejects at start that values.schema.json cannot
express: topic templates, the three Kafka topics, a shared MQTT client id.
*/}}
{{- define "downlink.validate" -}}
{{- $cmd := include "downlink.parseTemplate" (list "mqtt.commandTopic" .Values.config.mqtt.commandTopic) | fromYaml -}}
{{- $resp := include "downlink.parseTemplate" (list "mqtt.responseTopic" .Values.config.mqtt.responseTopic) | fromYaml -}}
{{- if eq $cmd.filter $resp.filter }}{{ fail "downlink: config.mqtt.responseTopic must differ from config.mqtt.commandTopic (vehicles would receive their own responses as commands)" }}{{ end -}}
{{- $k := .Values.config.kafka -}}
{{- $seen := dict -}}
{{- range $name := list "commandsTopic" "statusTopic" "deadLetterTopic" -}}
{{- $t := index $k $name -}}
{{- if has $t (list "." "..") }}{{ fail (printf "downlink: config.kafka.%s %q is not a valid Kafka topic name" $name $t) }}{{ end -}}
{{- if hasKey $seen $t }}{{ fail (printf "downlink: config.kafka.%s %q is the same topic as config.kafka.%s" $name $t (get $seen $t)) }}{{ end -}}
{{- $_ := set $seen $t $name -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (not (contains "${" .Values.config.mqtt.clientId)) }}{{ fail (printf "downlink: config.mqtt.clientId %q is shared by all %d replicas (EMQX would keep disconnecting one for the other); include ${POD_NAME}" .Values.config.mqtt.clientId (int .Values.replicaCount)) }}{{ end -}}
{{- end }}

{{/*
The effective service configuration (config.yaml).
*/}}
{{- define "downlink.config" -}}
{{- include "downlink.validate" . -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $_ := set $cfg.kafka "bootstrapServers" (include "downlink.kafkaBootstrapServers" .) -}}
{{- $auth := include "downlink.kafkaAuthConfig" . | fromYaml -}}
{{- with $auth.properties }}{{ $_ := set $cfg.kafka "properties" (merge ($cfg.kafka.properties | default dict) .) }}{{ end -}}
{{- with $auth.propertyFiles }}{{ $_ := set $cfg.kafka "propertyFiles" (merge ($cfg.kafka.propertyFiles | default dict) .) }}{{ end -}}
{{- if include "downlink.registryCASecret" . }}{{ $_ := set $cfg.registry "caFile" (printf "/etc/registry-ca/%s" .Values.registryAuth.caKey) }}{{ end -}}
{{- $_ := set $cfg.registry "url" (include "downlink.registryUrl" .) -}}
{{- $_ := set $cfg.mqtt "brokerUrl" (include "downlink.mqttBrokerUrl" .) -}}
{{- toYaml $cfg -}}
{{- end }}

{{/*
Topology spread constraints with the selector labels injected where missing.
*/}}
{{- define "downlink.topologySpreadConstraints" -}}
{{- $out := list -}}
{{- range .Values.topologySpreadConstraints -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "downlink.selectorLabels" $ | fromYaml)) -}}
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
{{- define "downlink.kafkaAuthType" -}}
{{- (.Values.kafkaAuth).type | default (((.Values.global).iov).kafkaAuthentication) | default "" -}}
{{- end }}

{{/*
The KafkaUser this service authenticates as, and the name of the Secret Strimzi's User
Operator writes for it: kafkaAuth.user, default <release>-downlink (the umbrella's KafkaUser).
*/}}
{{- define "downlink.kafkaUser" -}}
{{- (.Values.kafkaAuth).user | default (printf "%s-downlink" .Release.Name) -}}
{{- end }}

{{/*
librdkafka settings for kafkaAuth, as {properties, propertyFiles}: TLS trusting the cluster
CA (Secret <cluster>-cluster-ca-cert, key ca.crt, mounted at /etc/kafka-cluster-ca), and
SASL SCRAM-SHA-512 with the password file of the user's Secret (key password) or the user's
certificate and key (keys user.crt, user.key), mounted at /etc/kafka-user. Empty without.
*/}}
{{- define "downlink.kafkaAuthConfig" -}}
{{- $type := include "downlink.kafkaAuthType" . -}}
{{- $props := dict -}}
{{- $files := dict -}}
{{- if eq $type "scram-sha-512" -}}
{{- $props = dict "security.protocol" "SASL_SSL" "sasl.mechanisms" "SCRAM-SHA-512" "sasl.username" (include "downlink.kafkaUser" .) "ssl.ca.location" "/etc/kafka-cluster-ca/ca.crt" -}}
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
{{- define "downlink.secretVolumeMounts" -}}
{{- if include "downlink.kafkaAuthType" . }}
- name: kafka-cluster-ca
  mountPath: /etc/kafka-cluster-ca
  readOnly: true
- name: kafka-user
  mountPath: /etc/kafka-user
  readOnly: true
{{- end }}
{{- if include "downlink.registryCASecret" . }}
- name: registry-ca
  mountPath: /etc/registry-ca
  readOnly: true
{{- end -}}
{{- end }}

{{- define "downlink.secretVolumes" -}}
{{- $type := include "downlink.kafkaAuthType" . -}}
{{- if $type -}}
{{- $g := (.Values.global).iov | default dict -}}
- name: kafka-cluster-ca
  secret:
    secretName: {{ (.Values.kafkaAuth).caSecret | default (printf "%s-cluster-ca-cert" ($g.kafkaClusterName | default .Release.Name)) }}
    items:
      - {key: ca.crt, path: ca.crt}
- name: kafka-user
  secret:
    secretName: {{ include "downlink.kafkaUser" . }}
    items:
      {{- if eq $type "tls" }}
      - {key: user.crt, path: user.crt}
      - {key: user.key, path: user.key}
      {{- else }}
      - {key: password, path: password}
      {{- end }}
{{- end }}
{{- with include "downlink.registryCASecret" . }}
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
{{- define "downlink.registryCASecret" -}}
{{- $g := (.Values.global).iov | default dict -}}
{{- $inChart := "" -}}
{{- if and $g.schemaRegistryTLS (not (or .Values.config.registry.url $g.schemaRegistryUrl)) }}{{ $inChart = printf "%s-schema-registry-tls" .Release.Name }}{{ end -}}
{{- (.Values.registryAuth).caSecret | default $g.schemaRegistryCASecret | default $inChart -}}
{{- end }}
