{{/*
Command downlink wiring (charts/downlink) checked against the exhook-producer's
command tracking and the EMQX Service of this release.

The producer's commands.* defaults below are the service defaults
(services/exhook-producer/internal/config) and apply when the values omit them.
*/}}
{{- define "iov-platform.producerCommands" -}}
{{- $c := ((index .Values "exhook-producer" | default dict).config | default dict).commands | default dict -}}
enabled: {{ $c.enabled | default false }}
topicFilter: {{ (hasKey $c "topicFilter" | ternary $c.topicFilter "vehicles/+/commands/+") | quote }}
responseFilter: {{ (hasKey $c "responseFilter" | ternary $c.responseFilter "vehicles/+/commands/+/response") | quote }}
vehicleSegment: {{ hasKey $c "vehicleSegment" | ternary $c.vehicleSegment 1 | int }}
commandSegment: {{ hasKey $c "commandSegment" | ternary $c.commandSegment 3 | int }}
statusTopic: {{ (hasKey $c "statusTopic" | ternary $c.statusTopic "iov.vehicle.command-status") | quote }}
{{- end }}

{{/*
Shape of a downlink topic template such as vehicles/{vehicle_id}/commands/{command_id}:
the MQTT filter that matches its expansions ({vehicle_id} / {command_id} -> +) and
the 0-based levels of the two ids. The downlink chart validates the template itself.
Returns YAML {filter, vehicle, command}.
*/}}
{{- define "iov-platform.topicTemplateShape" -}}
{{- $levels := list -}}
{{- $vehicle := -1 -}}
{{- $command := -1 -}}
{{- range $i, $l := splitList "/" (toString .) -}}
{{- if eq $l "{vehicle_id}" }}{{ $vehicle = $i }}{{ $l = "+" }}{{ end -}}
{{- if eq $l "{command_id}" }}{{ $command = $i }}{{ $l = "+" }}{{ end -}}
{{- $levels = append $levels $l -}}
{{- end -}}
filter: {{ join "/" $levels | quote }}
vehicle: {{ $vehicle }}
command: {{ $command }}
{{- end }}

{{/*
MQTT URL of the EMQX Service of this release (the EMQX chart's fullname and
service.mqtt port): the in-chart default of downlink.config.mqtt.brokerUrl.
*/}}
{{- define "iov-platform.emqxMqttUrl" -}}
{{- printf "mqtt://%s:%v" (include "iov-platform.emqxFullname" .) (((include "iov-platform.emqxValues" . | fromYaml).service | default dict).mqtt | default 1883) -}}
{{- end }}

{{/*
Fail when the downlink and the rest of the platform disagree. Renders nothing.
*/}}
{{- define "iov-platform.validateDownlink" -}}
{{- $dl := .Values.downlink | default dict -}}
{{- if $dl.enabled -}}
{{- $cfg := $dl.config | default dict -}}
{{- $mqtt := $cfg.mqtt | default dict -}}
{{- /* broker: the downlink is an internal client and talks to EMQX directly */ -}}
{{- if not $mqtt.brokerUrl -}}
{{- if not (include "iov-platform.emqxKey" .) -}}
{{- fail "iov-platform: emqx.enabled=false but downlink.config.mqtt.brokerUrl is not set (the downlink needs an MQTT broker)" -}}
{{- end -}}
{{- $default := printf "mqtt://%s:1883" (include "iov-platform.depFullname" (dict "Release" .Release "values" dict "name" "emqx")) -}}
{{- $emqx := include "iov-platform.emqxMqttUrl" . -}}
{{- if ne $default $emqx -}}
{{- fail (printf "iov-platform: downlink.config.mqtt.brokerUrl defaults to %s but the EMQX Service of this release is %s; set downlink.config.mqtt.brokerUrl" $default $emqx) -}}
{{- end -}}
{{- end -}}
{{- /* command tracking in the producer must see the downlink's topics */ -}}
{{- $producer := index .Values "exhook-producer" | default dict -}}
{{- if $producer.enabled -}}
{{- $pc := include "iov-platform.producerCommands" . | fromYaml -}}
{{- $statusTopic := ($cfg.kafka | default dict).statusTopic -}}
{{- if ne $statusTopic $pc.statusTopic -}}
{{- fail (printf "iov-platform: downlink.config.kafka.statusTopic (%q) must equal exhook-producer.config.commands.statusTopic (%q): both write the CommandStatus events of one command" $statusTopic $pc.statusTopic) -}}
{{- end -}}
{{- range $kind := list "command" "response" -}}
{{- $tplKey := printf "%sTopic" $kind -}}
{{- $filterKey := printf "%sFilter" (ternary "topic" "response" (eq $kind "command")) -}}
{{- $tpl := index $mqtt $tplKey -}}
{{- $shape := include "iov-platform.topicTemplateShape" $tpl | fromYaml -}}
{{- $filter := index $pc $filterKey -}}
{{- if ne $filter $shape.filter -}}
{{- fail (printf "iov-platform: exhook-producer.config.commands.%s %q does not match the shape of downlink.config.mqtt.%s %q: it must have the same levels with + where the template has {vehicle_id} / {command_id}, i.e. %q" $filterKey $filter $tplKey $tpl $shape.filter) -}}
{{- end -}}
{{- if or (ne (int $shape.vehicle) (int $pc.vehicleSegment)) (ne (int $shape.command) (int $pc.commandSegment)) -}}
{{- fail (printf "iov-platform: downlink.config.mqtt.%s %q has {vehicle_id} at level %d and {command_id} at level %d, but exhook-producer.config.commands.vehicleSegment / commandSegment are %d / %d" $tplKey $tpl (int $shape.vehicle) (int $shape.command) (int $pc.vehicleSegment) (int $pc.commandSegment)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end }}
