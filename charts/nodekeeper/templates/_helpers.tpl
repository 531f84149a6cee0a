{{/* Names, labels and small computations shared by the templates. */}}

{{- define "nodekeeper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nodekeeper.fullname" -}}
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

{{- define "nodekeeper.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nodekeeper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nodekeeper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nodekeeper.labels" -}}
helm.sh/chart: {{ include "nodekeeper.chart" . }}
{{ include "nodekeeper.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nodekeeper
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "nodekeeper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nodekeeper.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "nodekeeper.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Docker socket is mounted only where something talks to Docker's API. */}}
{{- define "nodekeeper.needsDocker" -}}
{{- if or .Values.workloads.enabled .Values.backupRuns.enabled }}true{{ end }}
{{- end }}

{{/* A settings value as the agent reads it from its environment: strings as they are, the rest
as JSON (numbers without exponent, booleans lowercase, image_policy as a JSON object). */}}
{{- define "nodekeeper.settingValue" -}}
{{- if kindIs "string" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}
