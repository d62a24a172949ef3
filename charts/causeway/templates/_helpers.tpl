{{/* Names and labels shared by every object. */}}
{{- define "causeway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "causeway.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "causeway.labels" -}}
{{ include "causeway.selector" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: causeway
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "causeway.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/*
The pod template every component shares: the config and certificates in one
projected volume (the config names certificate paths relative to itself),
non-root, read-only root filesystem, probes on the admin port.
Call with (dict "root" $ "component" "gateway" "values" .Values.gateway "ports" list).
*/}}
{{- define "causeway.pod" -}}
metadata:
  labels:
    {{- include "causeway.labels" . | nindent 4 }}
  annotations:
    checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
spec:
  serviceAccountName: {{ include "causeway.fullname" .root }}-{{ .component }}
  automountServiceAccountToken: {{ eq .component "federation" }}
  securityContext:
    {{- toYaml .root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: {{ .component }}
      image: {{ include "causeway.image" .root }}
      imagePullPolicy: {{ .root.Values.image.pullPolicy }}
      args: [{{ .component | quote }}, "--config", "/etc/causeway/causeway.yaml"]
      ports:
        {{- toYaml .ports | nindent 8 }}
        # Probes and /metrics only; the full admin API stays on loopback.
        - {name: metrics, containerPort: {{ .root.Values.metricsPort }}, protocol: TCP}
      livenessProbe:
        httpGet: {path: /healthz, port: metrics}
        periodSeconds: 10
        failureThreshold: 3
      readinessProbe:
        httpGet: {path: /readyz, port: metrics}
        periodSeconds: 5
        failureThreshold: 2
      resources:
        {{- toYaml .values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - {name: config, mountPath: /etc/causeway, readOnly: true}
        - {name: state, mountPath: /var/lib/causeway}
        {{- if ne .component "dns" }}
        - {name: links, mountPath: /var/lib/causeway/links, readOnly: true}
        {{- end }}
  volumes:
    - name: config
      projected:
        defaultMode: 292  # 0444; keys are 0400 (256) below
        sources:
          - configMap:
              name: {{ include "causeway.fullname" .root }}
              items: [{key: causeway.yaml, path: causeway.yaml}]
          # Each component mounts only its own key (0400) and the certificates
          # it checks others with: this cluster's CA, and the peers' CAs for
          # the gateway and federation.
          - secret:
              name: {{ .root.Values.certificates.secretName }}
              items:
                - {key: {{ .component }}.pem, path: certs/{{ .component }}.pem, mode: 292}
                - {key: {{ .component }}-key.pem, path: certs/{{ .component }}-key.pem, mode: 256}
                - {key: ca.pem, path: certs/ca.pem, mode: 292}
                {{- if ne .component "dns" }}
                {{- range .root.Values.peers }}
                - {key: {{ .caKey }}, path: certs/{{ .caKey }}, mode: 292}
                {{- end }}
                {{- end }}
    - name: state
      emptyDir: {sizeLimit: 64Mi}
    {{- if ne .component "dns" }}
    # Linked peers (`causeway token redeem`): the federation writes this
    # Secret through the API; the pods follow the files the kubelet updates.
    # Optional: it does not exist until the first token is issued.
    - name: links
      secret:
        secretName: {{ include "causeway.fullname" .root }}-links
        optional: true
        defaultMode: 256
    {{- end }}
  {{- with .root.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .root.Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{- define "causeway.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "causeway.fullname" .root }}-{{ .component }}
  labels:
    {{- include "causeway.labels" . | nindent 4 }}
spec:
  minAvailable: {{ .root.Values.podDisruptionBudget.minAvailable }}
  selector:
    matchLabels:
      {{- include "causeway.selector" . | nindent 6 }}
{{- end -}}
