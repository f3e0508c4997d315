{{/* Names and labels. */}}
{{- define "pouch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pouch.fullname" -}}
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

{{- define "pouch.supernode" -}}{{ include "pouch.fullname" . | trunc 53 | trimSuffix "-" }}-supernode{{- end }}
{{- define "pouch.supernodeHeadless" -}}{{ include "pouch.fullname" . | trunc 44 | trimSuffix "-" }}-supernode-headless{{- end }}
{{- define "pouch.dfdaemon" -}}{{ include "pouch.fullname" . | trunc 54 | trimSuffix "-" }}-dfdaemon{{- end }}

{{- define "pouch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pouch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pouch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "pouch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "pouch.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "pouch.secretName" -}}
{{ .Values.secrets.existingSecret | default (printf "%s-secrets" (include "pouch.fullname" .)) }}
{{- end }}

{{/*
Where the TLS Secret is mounted, and the files in it.
*/}}
{{- define "pouch.tlsDir" -}}/etc/pouch/tls{{- end }}

{{/*
pouch.settings: the daemon's effective settings, flag name -> value, from a config map of
values with the empty entries left out and the chart's own settings added. Both the container's
arguments and the ConfigMap's config file are rendered from it, so they cannot disagree.
Call with (dict "root" $ "component" "supernode"|"dfdaemon"); returns YAML (use fromYaml).
*/}}
{{- define "pouch.settings" -}}
{{- $root := .root }}
{{- $out := dict }}
{{- range $k, $v := (index $root.Values .component).config }}
{{- if kindIs "slice" $v }}
{{- if $v }}{{ $_ := set $out $k $v }}{{ end }}
{{- else if and (not (kindIs "invalid" $v)) (ne (toString $v) "") }}
{{- $_ := set $out $k $v }}
{{- end }}
{{- end }}
{{- $tls := printf "%s/" (include "pouch.tlsDir" $root) }}
{{- if eq .component "supernode" }}
{{- if $root.Values.tls.enabled }}
{{- $_ := set $out "tls-cert" (print $tls "tls.crt") }}
{{- $_ := set $out "tls-key" (print $tls "tls.key") }}
{{- end }}
{{- else }}
{{- $_ := set $out "supernode" (include "pouch.supernodeURLs" $root) }}
{{- if $root.Values.tls.enabled }}
{{- $_ := set $out "supernode-ca" (print $tls "ca.crt") }}
{{- end }}
{{- end }}
{{- range list "data-dir" "listen" "p2p-listen" }}
{{- if not (index $out .) }}
{{- fail (printf "%s.config.%s is required: the chart mounts, exposes and probes it" $.component .) }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* pouch.port: the port of HOST:PORT. */}}
{{- define "pouch.port" -}}
{{- $p := splitList ":" . | last }}
{{- if or (not (regexMatch "^[0-9]+$" $p)) (eq $p "0") }}
{{- fail (printf "%q: the chart needs a fixed port (containers declare it, probes and peers use it)" .) }}
{{- end }}
{{- $p }}
{{- end }}

{{/* pouch.host: the host of HOST:PORT ([::1]:80 gives ::1). */}}
{{- define "pouch.host" -}}
{{- $parts := splitList ":" . }}
{{- join ":" (initial $parts) | trimPrefix "[" | trimSuffix "]" }}
{{- end }}

{{/* pouch.loopback: "true" when HOST:PORT listens on loopback only. */}}
{{- define "pouch.loopback" -}}
{{- $h := include "pouch.host" . }}
{{- or (hasPrefix "127." $h) (eq $h "localhost") (eq $h "::1") }}
{{- end }}

{{/* pouch.probeHost: where the kubelet, in the node's network, reaches a host-network listener. */}}
{{- define "pouch.probeHost" -}}
{{- $h := include "pouch.host" . }}
{{- if or (eq $h "") (eq $h "0.0.0.0") (eq $h "::") }}127.0.0.1{{ else }}{{ $h }}{{ end }}
{{- end }}

{{/* pouch.p2pPort: the TCP port of a libp2p multiaddr such as /ip4/0.0.0.0/tcp/65002. */}}
{{- define "pouch.p2pPort" -}}
{{- $p := regexFind "/tcp/[0-9]+" . | trimPrefix "/tcp/" }}
{{- if or (eq $p "") (eq $p "0") }}
{{- fail (printf "p2p-listen %q: the chart needs a fixed TCP port (peers on other nodes dial it)" .) }}
{{- end }}
{{- $p }}
{{- end }}

{{/*
pouch.supernodeURLs: the dfdaemon's --supernode, every supernode pod by its stable name in the
headless Service (or dfdaemon.supernodes when set). Tasks are spread over them by rendezvous
hashing, so the list must name every pod, in a fixed order.
*/}}
{{- define "pouch.supernodeURLs" -}}
{{- if .Values.dfdaemon.supernodes }}
{{- join "," .Values.dfdaemon.supernodes }}
{{- else }}
{{- $scheme := ternary "https" "http" .Values.tls.enabled }}
{{- $port := include "pouch.port" (index .Values.supernode.config "listen") }}
{{- $sn := include "pouch.supernode" . }}
{{- $svc := include "pouch.supernodeHeadless" . }}
{{- $urls := list }}
{{- range $i := until (int .Values.supernode.replicas) }}
{{- $urls = append $urls (printf "%s://%s-%d.%s.%s.svc.%s:%s" $scheme $sn $i $svc $.Release.Namespace $.Values.clusterDomain $port) }}
{{- end }}
{{- join "," $urls }}
{{- end }}
{{- end }}

{{/* pouch.probe: an HTTP probe from values {path, ...timings}. */}}
{{- define "pouch.probe" -}}
httpGet:
  path: {{ .probe.path }}
  port: http
  {{- with .host }}
  host: {{ . }}
  {{- end }}
  scheme: {{ .scheme }}
{{- with omit .probe "path" }}
{{ toYaml . }}
{{- end }}
{{- end }}
