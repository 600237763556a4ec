{{/*
Kafka topic names the platform needs, derived from the service values so the
KafkaTopic resources can never drift from what the services use:
  exhook-producer: every routes[].kafkaTopic + topics.status + topics.deadLetter
                   + commands.statusTopic (when commands.enabled)
  downlink (when enabled): kafka.commandsTopic + kafka.statusTopic + kafka.deadLetterTopic
  sample-consumer (when enabled): kafka.deadLetterTopic (when set)
  + kafka.topics.extra[].name
Returns a YAML list of unique names (shared topics appear once), sorted.
*/}}
{{- define "iov-platform.topicNames" -}}
{{- $names := dict -}}
{{- $producer := index .Values "exhook-producer" | default dict -}}
{{- $cfg := $producer.config | default dict -}}
{{- range ($cfg.routes | default list) -}}
{{- $_ := set $names .kafkaTopic true -}}
{{- end -}}
{{- with $cfg.topics -}}
{{- $_ := set $names .status true -}}
{{- $_ := set $names .deadLetter true -}}
{{- end -}}
{{- with $cfg.commands -}}
{{- if .enabled }}{{ $_ := set $names (.statusTopic | default "iov.vehicle.command-status") true }}{{ end -}}
{{- end -}}
{{- $downlink := .Values.downlink | default dict -}}
{{- if $downlink.enabled -}}
{{- $dk := ($downlink.config | default dict).kafka | default dict -}}
{{- range $t := list $dk.commandsTopic $dk.statusTopic $dk.deadLetterTopic -}}
{{- with $t }}{{ $_ := set $names . true }}{{ end -}}
{{- end -}}
{{- end -}}
{{- $consumer := index .Values "sample-consumer" | default dict -}}
{{- if $consumer.enabled -}}
{{- with (($consumer.config | default dict).kafka | default dict).deadLetterTopic }}{{ $_ := set $names . true }}{{ end -}}
{{- end -}}
{{- range .Values.kafka.topics.extra -}}
{{- $_ := set $names .name true -}}
{{- end -}}
{{- toYaml (keys $names | sortAlpha) -}}
{{- end }}

{{/*
Kubernetes object name of a KafkaTopic: the topic name itself when it is a valid
object name (Strimzi's convention), otherwise lower-cased with "_" turned into
"-". spec.topicName always carries the real topic name.
Usage: include "iov-platform.topicObjectName" "iov.vehicle.telemetry"
*/}}
{{- define "iov-platform.topicObjectName" -}}
{{- if regexMatch "^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$" . -}}
{{- . -}}
{{- else -}}
{{- regexReplaceAll "^[^a-z0-9]+|[^a-z0-9]+$" (. | lower | replace "_" "-") "" | trunc 253 -}}
{{- end -}}
{{- end }}

{{/*
Effective spec (partitions, replicas, config) of one derived topic:
kafka.topics.defaults < extra[] item < kafka.topics.overrides[<name>].
Usage: include "iov-platform.topicSpec" (list . "iov.vehicle.telemetry")
*/}}
{{- define "iov-platform.topicSpec" -}}
{{- $root := index . 0 -}}
{{- $topic := index . 1 -}}
{{- $spec := deepCopy $root.Values.kafka.topics.defaults -}}
{{- range $root.Values.kafka.topics.extra -}}
{{- if eq .name $topic -}}
{{- $spec = mergeOverwrite $spec (omit (deepCopy .) "name") -}}
{{- end -}}
{{- end -}}
{{- with (index ($root.Values.kafka.topics.overrides | default dict) $topic) -}}
{{- $spec = mergeOverwrite $spec (deepCopy .) -}}
{{- end -}}
{{- toYaml $spec -}}
{{- end }}

{{/*
Total number of broker nodes over all node pools.
*/}}
{{- define "iov-platform.brokerCount" -}}
{{- $n := 0 -}}
{{- range .Values.kafka.nodePools -}}
{{- if has "broker" .roles }}{{ $n = add $n (int .replicas) }}{{ end -}}
{{- end -}}
{{- $n -}}
{{- end }}

{{/*
Total number of controller nodes over all node pools.
*/}}
{{- define "iov-platform.controllerCount" -}}
{{- $n := 0 -}}
{{- range .Values.kafka.nodePools -}}
{{- if has "controller" .roles }}{{ $n = add $n (int .replicas) }}{{ end -}}
{{- end -}}
{{- $n -}}
{{- end }}

{{/*
JBOD storage of a node pool: one volume that also stores the KRaft metadata.
*/}}
{{- define "iov-platform.nodePoolStorage" -}}
{{- $s := . -}}
{{- $vol := dict "id" 0 "type" $s.type "kraftMetadata" "shared" -}}
{{- if eq $s.type "persistent-claim" -}}
{{- $_ := set $vol "size" $s.size -}}
{{- $_ := set $vol "deleteClaim" ($s.deleteClaim | default false) -}}
{{- with $s.class }}{{ $_ := set $vol "class" . }}{{ end -}}
{{- else -}}
{{- with $s.size }}{{ $_ := set $vol "sizeLimit" . }}{{ end -}}
{{- end -}}
type: jbod
volumes:
  {{- toYaml (list $vol) | nindent 2 }}
{{- end }}
