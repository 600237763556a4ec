{{/*
Pod template shared by the Deployment (no spool) and the StatefulSet (spool /
persistence): same probes, security context, checksum and grace period. In the
StatefulSet the spool PVC (volumeClaimTemplates "spool") is mounted at
config.spool.dir and fsGroup defaults to 65532 so the non-root user can write it.
*/}}
{{- define "exhook-producer.podTemplate" -}}
{{- $persistent := include "exhook-producer.persistent" . -}}
metadata:
  labels:
    {{- include "exhook-producer.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Roll the pods whenever the rendered config.yaml changes.
    checksum/config: {{ include "exhook-producer.config" . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "exhook-producer.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ include "exhook-producer.terminationGracePeriodSeconds" . }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- $psc := deepCopy (.Values.podSecurityContext | default dict) }}
    {{- if $persistent }}
    {{- if not (hasKey $psc "fsGroup") }}{{ $_ := set $psc "fsGroup" 65532 }}{{ end }}
    {{- if not (hasKey $psc "fsGroupChangePolicy") }}{{ $_ := set $psc "fsGroupChangePolicy" "OnRootMismatch" }}{{ end }}
    {{- end }}
    {{- toYaml $psc | nindent 4 }}
  containers:
    - name: exhook-producer
      image: {{ include "exhook-producer.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --config
        - /etc/exhook-producer/config.yaml
      ports:
        - name: grpc
          containerPort: {{ include "exhook-producer.grpcContainerPort" . }}
          protocol: TCP
        - name: http
          containerPort: {{ include "exhook-producer.httpContainerPort" . }}
          protocol: TCP
      {{- if or .Values.registryAuth.existingSecret .Values.extraEnv }}
      env:
        {{- include "exhook-producer.registryAuthEnv" . | nindent 8 }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- with .Values.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.probes.startup }}
      {{- if .enabled }}
      startupProbe:
        httpGet:
          path: {{ .path }}
          port: http
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
      {{- end }}
      {{- end }}
      {{- with .Values.probes.liveness }}
      {{- if .enabled }}
      livenessProbe:
        httpGet:
          path: {{ .path }}
          port: http
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
      {{- end }}
      {{- end }}
      {{- with .Values.probes.readiness }}
      {{- if .enabled }}
      readinessProbe:
        httpGet:
          path: {{ .path }}
          port: http
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
      {{- end }}
      {{- end }}
      {{- with .Values.lifecycle }}
      lifecycle:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/exhook-producer
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if $persistent }}
        - name: spool
          mountPath: {{ .Values.config.spool.dir }}
        {{- end }}
        {{- if include "exhook-producer.grpcTLS" . }}
        # The whole Secret as a directory (no subPath): the kubelet swaps a renewed
        # certificate in atomically and the producer re-reads the files.
        - name: grpc-tls
          mountPath: {{ .Values.grpc.tls.mountPath }}
          readOnly: true
        {{- if and .Values.grpc.tls.mtls .Values.grpc.tls.clientCASecret }}
        - name: grpc-client-ca
          mountPath: {{ include "exhook-producer.grpcClientCADir" . }}
          readOnly: true
        {{- end }}
        {{- end }}
        {{- with include "exhook-producer.secretVolumeMounts" . | trim }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "exhook-producer.fullname" . }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if include "exhook-producer.grpcTLS" . }}
    {{- /* group-readable only; fsGroup (65532 by default) gives the non-root user the group */}}
    {{- $mode := ternary 288 292 (hasKey (.Values.podSecurityContext | default dict) "fsGroup") }}
    - name: grpc-tls
      secret:
        secretName: {{ include "exhook-producer.grpcTLSSecret" . }}
        defaultMode: {{ $mode }}
    {{- if and .Values.grpc.tls.mtls .Values.grpc.tls.clientCASecret }}
    - name: grpc-client-ca
      secret:
        secretName: {{ .Values.grpc.tls.clientCASecret }}
        defaultMode: {{ $mode }}
        items:
          - {key: ca.crt, path: ca.crt}
    {{- end }}
    {{- end }}
    {{- with include "exhook-producer.secretVolumes" . | trim }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- include "exhook-producer.topologySpreadConstraints" . | nindent 4 }}
  {{- end }}
{{- end }}
