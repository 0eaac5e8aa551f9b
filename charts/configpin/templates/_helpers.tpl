{{/* Chart name, overridable. */}}
{{- define "configpin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name used as the prefix of every resource (and as the Service and
MutatingWebhookConfiguration name). At most 63 characters: it is a DNS label.
*/}}
{{- define "configpin.fullname" -}}
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

{{- define "configpin.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the webhook pods. Never change them: Deployment selectors are immutable. */}}
{{- define "configpin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "configpin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "configpin.labels" -}}
helm.sh/chart: {{ include "configpin.chart" . }}
{{ include "configpin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: configpin
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Label on the webhook's own pods. The webhook's objectSelector excludes objects that carry
it, so the webhook never intercepts its own pods.
*/}}
{{- define "configpin.componentLabel" -}}
configpin.io/component: webhook
{{- end }}

{{- define "configpin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "configpin.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Secret that holds the serving certificate (both TLS modes). */}}
{{- define "configpin.tlsSecretName" -}}
{{- printf "%s-tls" (include "configpin.fullname" .) }}
{{- end }}

{{/* Secret the server creates for the HMAC key when hmacKey.existingSecret is empty. */}}
{{- define "configpin.hmacSecretName" -}}
{{- printf "%s-hmac-key" (include "configpin.fullname" .) }}
{{- end }}

{{- define "configpin.selfManagedTLS" -}}
{{- if eq .Values.tls.mode "self-managed" }}true{{ end }}
{{- end }}

{{- define "configpin.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- /*
Both webhooks share everything but their name, rules, match conditions and failure policy.
*/ -}}
{{- define "configpin.webhookCommon" -}}
{{- $fullname := include "configpin.fullname" . -}}
{{- $wh := .Values.webhook -}}
admissionReviewVersions: ["v1"]
sideEffects: NoneOnDryRun
matchPolicy: Equivalent
reinvocationPolicy: IfNeeded
timeoutSeconds: {{ int $wh.timeoutSeconds }}
clientConfig:
  {{- if $wh.url }}
  url: {{ printf "%s/mutate" (trimSuffix "/" $wh.url) | quote }}
  {{- else }}
  service:
    name: {{ $fullname }}
    namespace: {{ .Release.Namespace }}
    path: /mutate
    port: {{ int .Values.service.port }}
  {{- end }}
  {{- with $wh.caBundle }}
  caBundle: {{ . | quote }}
  {{- end }}
namespaceSelector:
  matchLabels:
    configpin.io/inject: enabled
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values:
        - {{ .Release.Namespace }}
        - kube-system
        - kube-public
        - kube-node-lease
objectSelector:
  matchExpressions:
    - key: configpin.io/component
      operator: NotIn
      values:
        - webhook
{{- end }}
