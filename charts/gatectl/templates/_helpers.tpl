{{/* Names, labels and the computed lists every template shares. */}}

{{- define "gatectl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gatectl.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gatectl.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gatectl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatectl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gatectl.labels" -}}
helm.sh/chart: {{ include "gatectl.chart" . }}
{{ include "gatectl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "gatectl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gatectl.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "gatectl.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Namespaces the controller is told to watch (one per line). Namespaced scope with no
watchNamespaces means the release namespace; cluster scope with none means all (empty).
*/}}
{{- define "gatectl.watchNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- range (uniq .Values.watchNamespaces) }}
{{ . }}
{{- end -}}
{{- else if eq .Values.rbac.scope "namespaced" -}}
{{ .Release.Namespace }}
{{- end -}}
{{- end -}}

{{- define "gatectl.bearerTokenSecret" -}}
{{- if .Values.prometheus.bearerToken.existingSecret -}}
{{- .Values.prometheus.bearerToken.existingSecret -}}
{{- else if .Values.prometheus.bearerToken.value -}}
{{- printf "%s-prometheus-token" (include "gatectl.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
The rules the controller needs on namespaced objects, for a Role or a ClusterRole. Each
verb is one the controller calls: tests/realkube/test_chart_rbac.py takes each away on a
real API server and shows what breaks. The controller never writes a ReleaseGate itself
(gatectl approve/pause/reset do, with the user's rights), only its status (a PUT).
*/}}
{{- define "gatectl.gateRules" -}}
- apiGroups: ["gatectl.io"]
  resources: ["releasegates"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["gatectl.io"]
  resources: ["releasegates/status"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "patch"]
{{- if .Values.rbac.httpRoutes }}
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "update"]
{{- end }}
{{- if .Values.rbac.deployments }}
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "patch"]
{{- end }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if .Values.rbac.readSecrets }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
{{- if .Values.rbac.featureFlags }}
- apiGroups: ["core.openfeature.dev"]
  resources: ["featureflags"]
  verbs: ["get", "update"]
{{- end }}
{{- range .Values.rbac.patchTargets }}
- apiGroups: [{{ .apiGroup | quote }}]
  resources: [{{ .resource | quote }}]
  verbs: ["get", "patch"]
{{- end }}
{{- end -}}

{{/* Alert selector for the controller's own series (the scrape job is the Service name). */}}
{{- define "gatectl.jobSelector" -}}
job="{{ include "gatectl.fullname" . }}"
{{- end -}}
