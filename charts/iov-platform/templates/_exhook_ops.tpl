{{/*
Pod spec fields shared by the exhookOps Job and status exporter (templates/exhook-ops.yaml):
the producer's image pull secrets and pod security context, and the EMQX API key Secret.
Usage: include "iov-platform.exhookOpsPod" (list . "Never")  (the restartPolicy)
*/}}
{{- define "iov-platform.exhookOpsPod" -}}
{{- $root := index . 0 }}
{{- $producer := index $root.Values "exhook-producer" }}
{{- $key := $root.Values.exhookOps.apiKey }}
restartPolicy: {{ index . 1 }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with $producer.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $producer.podSecurityContext | nindent 2 }}
volumes:
  - name: api-key
    secret:
      secretName: {{ $key.secretName }}
      items:
        - {key: {{ $key.fileKey }}, path: {{ $key.fileKey }}}
{{- end }}
