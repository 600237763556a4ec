{{/*
NetworkPolicies (networkPolicy.enabled): helpers. Every policy selects its pods with explicit
labels and every rule names explicit peers; iov-platform.netpol refuses to render a policy
whose pod selector or any peer is empty (an empty selector selects everything).
*/}}

{{/*
Fail unless a label selector map (matchLabels) has at least one non-empty label.
Usage: include "iov-platform.netpol.requireLabels" (list "what" $map)
*/}}
{{- define "iov-platform.netpol.requireLabels" -}}
{{- $what := index . 0 -}}
{{- $m := index . 1 | default dict -}}
{{- if not (kindIs "map" $m) }}{{ fail (printf "iov-platform: NetworkPolicy %s: the selector must be a map of labels, got %v" $what $m) }}{{ end -}}
{{- if not $m }}{{ fail (printf "iov-platform: NetworkPolicy %s: empty selector (it would match every pod or namespace); name the labels" $what) }}{{ end -}}
{{- range $k, $v := $m }}{{ if or (not $k) (not (toString $v)) }}{{ fail (printf "iov-platform: NetworkPolicy %s: label %q has an empty key or value" $what $k) }}{{ end }}{{ end -}}
{{- end }}

{{/*
Fail unless a peer (NetworkPolicyPeer) names something: a podSelector and/or namespaceSelector
with labels (matchLabels, or matchExpressions), or an ipBlock with a cidr.
Usage: include "iov-platform.netpol.checkPeer" (list "what" $peer)
*/}}
{{- define "iov-platform.netpol.checkPeer" -}}
{{- $what := index . 0 -}}
{{- $p := index . 1 | default dict -}}
{{- if not (or $p.podSelector $p.namespaceSelector $p.ipBlock) }}{{ fail (printf "iov-platform: NetworkPolicy %s: empty peer (it would allow every pod); give a podSelector, namespaceSelector or ipBlock" $what) }}{{ end -}}
{{- range $sel := list "podSelector" "namespaceSelector" -}}
{{- if hasKey $p $sel -}}
{{- $s := get $p $sel | default dict -}}
{{- if not $s.matchExpressions }}{{ include "iov-platform.netpol.requireLabels" (list (printf "%s %s" $what $sel) $s.matchLabels) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- if and (hasKey $p "ipBlock") (not ($p.ipBlock | default dict).cidr) }}{{ fail (printf "iov-platform: NetworkPolicy %s: ipBlock without cidr" $what) }}{{ end -}}
{{- end }}

{{/*
A NetworkPolicy. Usage: include "iov-platform.netpol" (dict "root" $ "name" "x"
  "podLabels" $labels "ingress" (list (dict "ports" .. "from" ..)) "egress" (list (dict "ports" .. "to" ..)))
Both policy types are always listed: what no rule allows is denied.
*/}}
{{- define "iov-platform.netpol" -}}
{{- $name := .name -}}
{{- include "iov-platform.netpol.requireLabels" (list (printf "%s podSelector" $name) .podLabels) -}}
{{- range $dir := list "ingress" "egress" -}}
{{- range $i, $r := get $ $dir | default list -}}
{{- $peers := get $r (ternary "from" "to" (eq $dir "ingress")) | default list -}}
{{- if not $peers }}{{ fail (printf "iov-platform: NetworkPolicy %s: %s rule %d has no peers (it would allow everyone)" $name $dir $i) }}{{ end -}}
{{- if not $r.ports }}{{ fail (printf "iov-platform: NetworkPolicy %s: %s rule %d has no ports" $name $dir $i) }}{{ end -}}
{{- range $j, $p := $peers }}{{ include "iov-platform.netpol.checkPeer" (list (printf "%s %s rule %d peer %d" $name $dir $i $j) $p) }}{{ end -}}
{{- end -}}
{{- end }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ $name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "iov-platform.labels" (list .root "network-policy") | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- toYaml .podLabels | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    {{- toYaml (.ingress | default list) | nindent 4 }}
  egress:
    {{- toYaml (.egress | default list) | nindent 4 }}
{{- end }}

{{/*
Ports (YAML list of {port, protocol: TCP}) of a comma-separated host:port list, unique.
*/}}
{{- define "iov-platform.netpol.hostPorts" -}}
{{- $ports := list -}}
{{- range splitList "," . -}}
{{- $hp := regexReplaceAll "^[a-zA-Z]+://" (trim .) "" -}}
{{- $p := regexFind "[0-9]+$" $hp -}}
{{- if not $p }}{{ fail (printf "iov-platform: NetworkPolicy: no port in %q" $hp) }}{{ end -}}
{{- $ports = append $ports (dict "port" (int $p) "protocol" "TCP") -}}
{{- end -}}
{{- toYaml (uniq $ports) -}}
{{- end }}

{{/*
Egress rule to Kafka for a bootstrap list: the Strimzi broker pods of this release's cluster
(strimzi.io/cluster, strimzi.io/kind: Kafka) on the bootstrap ports when every host is that
cluster's bootstrap Service, else networkPolicy.external.kafka (required then).
Usage: include "iov-platform.netpol.kafkaEgress" (list $ $bootstrap "who")
*/}}
{{- define "iov-platform.netpol.kafkaEgress" -}}
{{- $ := index . 0 -}}
{{- $bootstrap := index . 1 -}}
{{- $cluster := include "iov-platform.kafkaClusterName" $ -}}
{{- $inChart := $.Values.kafka.enabled -}}
{{- range splitList "," $bootstrap -}}
{{- $host := regexReplaceAll ":[0-9]+$" (regexReplaceAll "^[a-zA-Z]+://" (trim .) "") "" -}}
{{- if not (or (eq $host (printf "%s-kafka-bootstrap" $cluster)) (hasPrefix (printf "%s-kafka-bootstrap.%s." $cluster $.Release.Namespace) (printf "%s." $host))) }}{{ $inChart = false }}{{ end -}}
{{- end -}}
{{- $peers := list (dict "podSelector" (dict "matchLabels" (dict "strimzi.io/cluster" $cluster "strimzi.io/kind" "Kafka"))) -}}
{{- if not $inChart -}}
{{- $peers = $.Values.networkPolicy.external.kafka | default list -}}
{{- if not $peers }}{{ fail (printf "iov-platform: networkPolicy.enabled and %s uses a Kafka outside this release (%s): list its peers in networkPolicy.external.kafka" (index . 2) $bootstrap) }}{{ end -}}
{{- end -}}
{{- toYaml (list (dict "ports" (include "iov-platform.netpol.hostPorts" $bootstrap | fromYamlArray) "to" $peers)) -}}
{{- end }}

{{/*
Egress rule to the schema registry at a URL: the in-chart registry's pods on its container
port, else networkPolicy.external.registry on the URL's port.
Usage: include "iov-platform.netpol.registryEgress" (list $ $url "who")
*/}}
{{- define "iov-platform.netpol.registryEgress" -}}
{{- $ := index . 0 -}}
{{- $url := index . 1 -}}
{{- $u := urlParse $url -}}
{{- $host := regexReplaceAll ":[0-9]+$" $u.host "" -}}
{{- $name := include "iov-platform.schemaRegistryName" $ -}}
{{- if and $.Values.schemaRegistry.enabled (or (eq $host $name) (hasPrefix (printf "%s.%s." $name $.Release.Namespace) (printf "%s." $host))) -}}
{{- toYaml (list (dict "ports" (list (dict "port" 8081 "protocol" "TCP")) "to" (list (dict "podSelector" (dict "matchLabels" (include "iov-platform.selectorLabels" (list $ "schema-registry") | fromYaml)))))) -}}
{{- else -}}
{{- $peers := $.Values.networkPolicy.external.registry | default list -}}
{{- if not $peers }}{{ fail (printf "iov-platform: networkPolicy.enabled and %s uses a schema registry outside this release (%s): list its peers in networkPolicy.external.registry" (index . 2) $url) }}{{ end -}}
{{- $port := regexFind "[0-9]+$" $u.host | default (ternary "443" "80" (eq $u.scheme "https")) -}}
{{- toYaml (list (dict "ports" (list (dict "port" (int $port) "protocol" "TCP")) "to" $peers)) -}}
{{- end -}}
{{- end }}

{{/*
Egress rule to the cluster DNS (networkPolicy.dns), 53 over UDP and TCP.
*/}}
{{- define "iov-platform.netpol.dnsEgress" -}}
{{- $d := .Values.networkPolicy.dns -}}
{{- include "iov-platform.netpol.requireLabels" (list "dns.podLabels" $d.podLabels) -}}
{{- if not $d.namespace }}{{ fail "iov-platform: networkPolicy.dns.namespace is empty" }}{{ end -}}
{{- toYaml (list (dict "ports" (list (dict "port" 53 "protocol" "UDP") (dict "port" 53 "protocol" "TCP")) "to" (list (dict "namespaceSelector" (dict "matchLabels" (dict "kubernetes.io/metadata.name" $d.namespace)) "podSelector" (dict "matchLabels" $d.podLabels))))) -}}
{{- end }}

{{/*
Ingress rule to the metrics (http) port from the monitoring namespace (networkPolicy.monitoring),
narrowed to its podLabels when set.
*/}}
{{- define "iov-platform.netpol.metricsIngress" -}}
{{- $m := .Values.networkPolicy.monitoring -}}
{{- if not $m.namespace }}{{ fail "iov-platform: networkPolicy.monitoring.namespace is empty (the namespace allowed to scrape the metrics ports)" }}{{ end -}}
{{- $peer := dict "namespaceSelector" (dict "matchLabels" (dict "kubernetes.io/metadata.name" $m.namespace)) -}}
{{- with $m.podLabels }}{{ $_ := set $peer "podSelector" (dict "matchLabels" .) }}{{ end -}}
{{- toYaml (list (dict "ports" (list (dict "port" "http" "protocol" "TCP")) "from" (list $peer))) -}}
{{- end }}

{{/*
Egress rule from the downlink to EMQX's MQTT port (port of the broker URL; 1883 for mqtt://,
8883 for mqtts:// without one): the EMQX pods of this release when the URL's host is its
Service, else networkPolicy.external.emqx.
Usage: include "iov-platform.netpol.emqxEgress" (list $ $brokerUrl)
*/}}
{{- define "iov-platform.netpol.emqxEgress" -}}
{{- $ := index . 0 -}}
{{- $url := index . 1 -}}
{{- $u := urlParse $url -}}
{{- $host := regexReplaceAll ":[0-9]+$" $u.host "" -}}
{{- $port := regexFind ":[0-9]+$" $u.host | trimPrefix ":" | default (ternary "8883" "1883" (has $u.scheme (list "mqtts" "ssl" "tls"))) -}}
{{- $emqx := include "iov-platform.emqxFullname" $ -}}
{{- $peers := list -}}
{{- if and (include "iov-platform.emqxKey" $) (or (eq $host $emqx) (hasPrefix (printf "%s.%s." $emqx $.Release.Namespace) (printf "%s." $host))) -}}
{{- $peers = list (dict "podSelector" (dict "matchLabels" (include "iov-platform.emqxPodLabels" $ | fromYaml))) -}}
{{- else -}}
{{- $peers = $.Values.networkPolicy.external.emqx | default list -}}
{{- if not $peers }}{{ fail (printf "iov-platform: networkPolicy.enabled and the downlink publishes to an EMQX outside this release (%s): list its peers in networkPolicy.external.emqx" $url) }}{{ end -}}
{{- end -}}
{{- toYaml (list (dict "ports" (list (dict "port" (int $port) "protocol" "TCP")) "to" $peers)) -}}
{{- end }}
