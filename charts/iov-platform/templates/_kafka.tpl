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

{{/*
How the services authenticate to the in-chart Kafka (global.iov.kafkaAuthentication):
"" (the plain listener on 9092, no authentication), "scram-sha-512" or "tls" (mutual TLS).
With a type, the Kafka gets a TLS listener on 9093 with that authentication, every enabled
service gets a KafkaUser of that type, and the service charts mount the Secrets Strimzi
generates for it (the same global value switches them).
*/}}
{{- define "iov-platform.kafkaAuthentication" -}}
{{- ((.Values.global).iov).kafkaAuthentication | default "" -}}
{{- end }}

{{/*
KafkaUser (and Secret) name of a service: <service>.kafkaAuth.user, default
<release>-<service>; the service chart computes the same default.
Usage: include "iov-platform.kafkaUserName" (list . "exhook-producer")
*/}}
{{- define "iov-platform.kafkaUserName" -}}
{{- $root := index . 0 -}}
{{- $svc := index . 1 -}}
{{- ((index $root.Values $svc | default dict).kafkaAuth | default dict).user | default (printf "%s-%s" $root.Release.Name $svc) -}}
{{- end }}

{{/*
One ACL rule of a KafkaUser: resource type, name (ignored for the cluster), pattern type and
operations. Usage: include "iov-platform.acl" (list "topic" "iov.deadletter" "literal" (list "Write" "Describe"))
*/}}
{{- define "iov-platform.acl" -}}
{{- $res := dict "type" (index . 0) -}}
{{- if ne (index . 0) "cluster" }}{{ $_ := set $res "name" (index . 1) }}{{ $_ := set $res "patternType" (index . 2) }}{{ end -}}
{{- toYaml (list (dict "type" "allow" "resource" $res "operations" (index . 3))) -}}
{{- end }}

{{/*
The KafkaUsers of the enabled services, each with the ACLs of exactly what it does, derived
from the same values that name its topics and group (so they cannot drift):
  exhook-producer: Write, Describe, DescribeConfigs on every route topic, topics.status,
                   topics.deadLetter and commands.statusTopic (with commands.enabled);
                   IdempotentWrite on the cluster
  sample-consumer: Read, Describe on config.kafka.topics; Read on config.kafka.groupId;
                   Write, Describe on config.kafka.deadLetterTopic (when set)
  downlink:        Read, Describe on kafka.commandsTopic; Read on kafka.groupId;
                   Write, Describe on kafka.statusTopic and kafka.deadLetterTopic
  schema registry: Read, Write, Describe, DescribeConfigs on schemaRegistry.kafkastoreTopic;
                   Read, Describe on the groups prefixed with its group id (leader election
                   and the store reader, schemaRegistry's groupId and <groupId>-reader)
Returns a YAML list of {component, name, acls}; empty without kafkaAuthentication.
*/}}
{{- define "iov-platform.kafkaUsers" -}}
{{- $users := list -}}
{{- if include "iov-platform.kafkaAuthentication" . -}}
{{- $producer := index .Values "exhook-producer" | default dict -}}
{{- if $producer.enabled -}}
{{- $cfg := $producer.config | default dict -}}
{{- $topics := list -}}
{{- range ($cfg.routes | default list) }}{{ $topics = append $topics .kafkaTopic }}{{ end -}}
{{- with $cfg.topics }}{{ $topics = append (append $topics .status) .deadLetter }}{{ end -}}
{{- with $cfg.commands }}{{ if .enabled }}{{ $topics = append $topics (.statusTopic | default "iov.vehicle.command-status") }}{{ end }}{{ end -}}
{{- $acls := list -}}
{{- range $topics | compact | uniq | sortAlpha -}}
{{- $acls = concat $acls (include "iov-platform.acl" (list "topic" . "literal" (list "Write" "Describe" "DescribeConfigs")) | fromYamlArray) -}}
{{- end -}}
{{- $acls = concat $acls (include "iov-platform.acl" (list "cluster" "" "" (list "IdempotentWrite")) | fromYamlArray) -}}
{{- $users = append $users (dict "component" "exhook-producer" "name" (include "iov-platform.kafkaUserName" (list . "exhook-producer")) "acls" $acls) -}}
{{- end -}}
{{- $consumer := index .Values "sample-consumer" | default dict -}}
{{- if $consumer.enabled -}}
{{- $k := ($consumer.config | default dict).kafka | default dict -}}
{{- $acls := list -}}
{{- range ($k.topics | default list | uniq | sortAlpha) -}}
{{- $acls = concat $acls (include "iov-platform.acl" (list "topic" . "literal" (list "Read" "Describe")) | fromYamlArray) -}}
{{- end -}}
{{- with $k.deadLetterTopic -}}
{{- $acls = concat $acls (include "iov-platform.acl" (list "topic" . "literal" (list "Write" "Describe")) | fromYamlArray) -}}
{{- end -}}
{{- $acls = concat $acls (include "iov-platform.acl" (list "group" ($k.groupId | default "iov-sample-consumer") "literal" (list "Read")) | fromYamlArray) -}}
{{- $users = append $users (dict "component" "sample-consumer" "name" (include "iov-platform.kafkaUserName" (list . "sample-consumer")) "acls" $acls) -}}
{{- end -}}
{{- $downlink := .Values.downlink | default dict -}}
{{- if $downlink.enabled -}}
{{- $k := ($downlink.config | default dict).kafka | default dict -}}
{{- $acls := include "iov-platform.acl" (list "topic" ($k.commandsTopic | default "iov.vehicle.commands") "literal" (list "Read" "Describe")) | fromYamlArray -}}
{{- range (list ($k.statusTopic | default "iov.vehicle.command-status") ($k.deadLetterTopic | default "iov.deadletter") | uniq | sortAlpha) -}}
{{- $acls = concat $acls (include "iov-platform.acl" (list "topic" . "literal" (list "Write" "Describe")) | fromYamlArray) -}}
{{- end -}}
{{- $acls = concat $acls (include "iov-platform.acl" (list "group" ($k.groupId | default "iov-downlink") "literal" (list "Read")) | fromYamlArray) -}}
{{- $users = append $users (dict "component" "downlink" "name" (include "iov-platform.kafkaUserName" (list . "downlink")) "acls" $acls) -}}
{{- end -}}
{{- if .Values.schemaRegistry.enabled -}}
{{- $sr := .Values.schemaRegistry -}}
{{- $acls := include "iov-platform.acl" (list "topic" $sr.kafkastoreTopic "literal" (list "Read" "Write" "Describe" "DescribeConfigs")) | fromYamlArray -}}
{{- $acls = concat $acls (include "iov-platform.acl" (list "group" (include "iov-platform.schemaRegistryGroupId" .) "prefix" (list "Read" "Describe")) | fromYamlArray) -}}
{{- $users = append $users (dict "component" "schema-registry" "name" (include "iov-platform.schemaRegistryKafkaUser" .) "acls" $acls) -}}
{{- end -}}
{{- end -}}
{{- toYaml $users -}}
{{- end }}

{{/*
Consumer group id of the schema registry's leader election; its store reader uses
<groupId>-reader.
*/}}
{{- define "iov-platform.schemaRegistryGroupId" -}}
{{- .Values.schemaRegistry.groupId | default (include "iov-platform.schemaRegistryName" .) -}}
{{- end }}

{{/*
KafkaUser (and Secret) of the in-chart schema registry: <release>-schema-registry.
*/}}
{{- define "iov-platform.schemaRegistryKafkaUser" -}}
{{- include "iov-platform.schemaRegistryName" . -}}
{{- end }}
