{{/* Chart name. */}}
{{- define "fleetmatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every object name. */}}
{{- define "fleetmatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "fleetmatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "fleetmatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fleetmatch
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "allocator"). */}}
{{- define "fleetmatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fleetmatch.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component. */}}
{{- define "fleetmatch.componentLabels" -}}
{{ include "fleetmatch.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The fleetmatch image. */}}
{{- define "fleetmatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Namespace of GameServers, Fleets and FleetAutoscalers. */}}
{{- define "fleetmatch.gsNamespace" -}}
{{- default .Release.Namespace .Values.gameservers.namespace }}
{{- end }}

{{/* Name of the game servers' ServiceAccount (the SDK sidecar runs with it). */}}
{{- define "fleetmatch.sdkServiceAccount" -}}
{{- printf "%s-sdk" (include "fleetmatch.fullname" .) }}
{{- end }}

{{/* True when the chart runs its own Redis. */}}
{{- define "fleetmatch.inChartRedis" -}}
{{- if not (or .Values.redis.external.url .Values.redis.external.existingSecret) }}true{{ end }}
{{- end }}

{{/* The Secret with tokens (the user's or the chart's). */}}
{{- define "fleetmatch.secretName" -}}
{{- default (printf "%s-secrets" (include "fleetmatch.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/* A secret value: the one given, else the one already in the cluster, else a new random one.
     (dict "root" $ "key" "allocator-token" "value" .Values.secrets.allocatorToken) */}}
{{- define "fleetmatch.secretValue" -}}
{{- $name := printf "%s-secrets" (include "fleetmatch.fullname" .root) }}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace $name }}
{{- if .value }}
{{- .value | b64enc }}
{{- else if and $existing $existing.data (hasKey $existing.data .key) }}
{{- index $existing.data .key }}
{{- else }}
{{- randAlphaNum 32 | b64enc }}
{{- end }}
{{- end }}

{{/* Environment shared by every fleetmatch container: namespace, logs, Redis. */}}
{{- define "fleetmatch.env" -}}
- name: FLEETMATCH_NAMESPACE
  value: {{ include "fleetmatch.gsNamespace" . | quote }}
- name: FLEETMATCH_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: FLEETMATCH_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: FLEETMATCH_DATA_DIR
  value: /tmp/fleetmatch
# GameServers, Fleets and FleetAutoscalers are custom resources; reached with the Pod's service account.
- name: FLEETMATCH_BACKEND
  value: kubernetes
- name: FLEETMATCH_KUBE_IN_CLUSTER
  value: "true"
{{- if .Values.redis.external.existingSecret }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.external.existingSecret }}
      key: {{ .Values.redis.external.existingSecretKey }}
{{- else if .Values.redis.external.url }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "fleetmatch.fullname" . }}-redis-url
      key: url
{{- else }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "fleetmatch.secretName" . }}
      key: redis-password
- name: REDIS_URL
  value: "redis://:$(REDIS_PASSWORD)@{{ include "fleetmatch.fullname" . }}-redis:6379/0"
{{- end }}
{{- with .Values.redis.ticketsUrl }}
- name: FLEETMATCH_TICKETS_REDIS_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Prometheus scrape annotations: (dict "root" $ "port" 9100 "scheme" "http"). */}}
{{- define "fleetmatch.scrapeAnnotations" -}}
{{- if .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
prometheus.io/scheme: {{ default "http" .scheme }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by the fleetmatch Deployments:
     (dict "root" $ "component" "allocator" "values" .Values.allocator). */}}
{{- define "fleetmatch.podCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{ include "fleetmatch.podScheduling" . }}
{{- end }}

{{/* Where a component's Pods run: node selection, tolerations, affinity, priority and spread.
     A topology spread constraint without a labelSelector spreads the component's own Pods.
     (dict "root" $ "component" "allocator" "values" .Values.allocator) */}}
{{- define "fleetmatch.podScheduling" -}}
{{- $root := .root }}
{{- $component := .component }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range . }}
  {{- $constraint := deepCopy . }}
  {{- if not (hasKey $constraint "labelSelector") }}
  {{- $_ := set $constraint "labelSelector" (dict "matchLabels" (include "fleetmatch.selectorLabels" (dict "root" $root "component" $component) | fromYaml)) }}
  {{- end }}
  - {{- toYaml $constraint | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Labels of a component's Pods: its selector labels plus podLabels.
     (dict "root" $ "component" "allocator" "values" .Values.allocator) */}}
{{- define "fleetmatch.podLabels" -}}
{{ include "fleetmatch.selectorLabels" . }}
{{- with .values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The replicas of a Deployment, unless a HorizontalPodAutoscaler owns them (hpa.yaml).
     (dict "values" .Values.allocator) */}}
{{- define "fleetmatch.replicas" -}}
{{- if not (and .values.autoscaling .values.autoscaling.enabled) }}
replicas: {{ .values.replicas }}
{{- end }}
{{- end }}

{{/* A component's Service, reachable the ways operators expose one: ClusterIP, NodePort or
     LoadBalancer. Fields that only mean something for another type are refused, not ignored.
     (dict "root" $ "name" "<fullname>-allocator" "component" "allocator" "service" $v.service
           "path" "allocator.service" "portName" "http") */}}
{{- define "fleetmatch.service" -}}
{{- $s := .service }}
{{- $exposed := has $s.type (list "NodePort" "LoadBalancer") }}
{{- if and $s.nodePort (not $exposed) }}
{{- fail (printf "%s.nodePort needs %s.type NodePort or LoadBalancer (it is %s)" .path .path $s.type) }}
{{- end }}
{{- if and $s.externalTrafficPolicy (not $exposed) }}
{{- fail (printf "%s.externalTrafficPolicy needs %s.type NodePort or LoadBalancer (it is %s)" .path .path $s.type) }}
{{- end }}
{{- if and (or $s.loadBalancerIP $s.loadBalancerSourceRanges $s.loadBalancerClass) (ne $s.type "LoadBalancer") }}
{{- fail (printf "%s.loadBalancerIP, loadBalancerSourceRanges and loadBalancerClass need %s.type LoadBalancer (it is %s)" .path .path $s.type) }}
{{- end }}
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}
  labels:
    {{- include "fleetmatch.componentLabels" (dict "root" .root "component" .component) | nindent 4 }}
  {{- with $s.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $s.type }}
  {{- with $s.externalTrafficPolicy }}
  externalTrafficPolicy: {{ . }}
  {{- end }}
  {{- with $s.loadBalancerClass }}
  loadBalancerClass: {{ . }}
  {{- end }}
  {{- with $s.loadBalancerIP }}
  loadBalancerIP: {{ . }}
  {{- end }}
  {{- with $s.loadBalancerSourceRanges }}
  loadBalancerSourceRanges:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    {{- include "fleetmatch.selectorLabels" (dict "root" .root "component" .component) | nindent 4 }}
  ports:
    - name: {{ .portName }}
      port: {{ $s.port }}
      targetPort: http
      protocol: TCP
      {{- with $s.nodePort }}
      nodePort: {{ . }}
      {{- end }}
{{- end }}

{{/* The backend of an Ingress path: the Service of the component it names (matchmaker, allocator
     or dashboard) and that Service's port. (dict "root" $ "component" "matchmaker") */}}
{{- define "fleetmatch.ingressBackend" -}}
{{- $fullname := include "fleetmatch.fullname" .root }}
{{- $values := .root.Values }}
{{- $port := 0 }}
{{- if eq .component "matchmaker" }}
{{- $port = $values.matchmaker.frontend.service.port }}
{{- else if eq .component "allocator" }}
{{- $port = $values.allocator.service.port }}
{{- else if eq .component "dashboard" }}
{{- $dashboard := $values.dashboard | default dict }}
{{- if not (dig "enabled" true $dashboard) }}
{{- fail "ingress: a path routes to the dashboard, but dashboard.enabled is false" }}
{{- end }}
{{- $port = required "ingress: a path routes to the dashboard, which needs dashboard.service.port" (dig "service" "port" nil $dashboard) }}
{{- else }}
{{- fail (printf "ingress: component %q is none of matchmaker, allocator, dashboard" .component) }}
{{- end -}}
service:
  name: {{ $fullname }}-{{ .component }}
  port:
    number: {{ $port }}
{{- end }}

{{/* The Secret holding the ticket API's certificate (matchmaker.frontend.tls). */}}
{{- define "fleetmatch.matchmakerTlsSecret" -}}
{{- $tls := .Values.matchmaker.frontend.tls }}
{{- if $tls.certManager.enabled }}
{{- default (printf "%s-matchmaker-tls" (include "fleetmatch.fullname" .)) $tls.secretName }}
{{- else }}
{{- required "matchmaker.frontend.tls.enabled needs matchmaker.frontend.tls.secretName (a kubernetes.io/tls Secret) or matchmaker.frontend.tls.certManager.enabled" $tls.secretName }}
{{- end }}
{{- end }}
