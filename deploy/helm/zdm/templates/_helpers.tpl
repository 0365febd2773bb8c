{{/*
Names. fullname leaves room for "-headless" and an instance's "-NN" within the 63 characters
of a Service name; it must start with a letter (DNS-1035: Service names).
*/}}
{{- define "zdm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "zdm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "zdm.namespace" -}}
{{- default .Release.Namespace .Values.namespace -}}
{{- end -}}

{{- define "zdm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zdm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: proxy
{{- end -}}

{{- define "zdm.labels" -}}
{{ include "zdm.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "zdm.image" -}}
{{- printf "%s:%s" .Values.proxy.image.repository (default .Chart.AppVersion .Values.proxy.image.tag) -}}
{{- end -}}

{{/* The Secret holding the logins: the user's, or the one the chart makes; empty: none */}}
{{- define "zdm.credentialsSecret" -}}
{{- $c := .Values.credentials -}}
{{- if $c.existingSecret -}}
{{- $c.existingSecret -}}
{{- else if or $c.origin.username $c.target.username -}}
{{- printf "%s-credentials" (include "zdm.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The Secret of a TLS side (origin, target, proxy): the user's, or the one the chart makes */}}
{{- define "zdm.tlsSecret" -}}
{{- $tls := .tls -}}
{{- if $tls.existingSecret -}}
{{- $tls.existingSecret -}}
{{- else -}}
{{- printf "%s-%s-tls" (include "zdm.fullname" .root) .side -}}
{{- end -}}
{{- end -}}

{{/* Whether a TLS side (origin, target, proxy) has files to mount: "true" or empty. A
cluster's TLS with neither a Secret nor PEM texts trusts the system's CAs. */}}
{{- define "zdm.tlsFiles" -}}
{{- if and .enabled (or .existingSecret .ca .cert) -}}
true
{{- end -}}
{{- end -}}

{{/* Each instance's own Service, by name, in order: the addresses of proxy.instances */}}
{{- define "zdm.instanceHosts" -}}
{{- $full := include "zdm.fullname" . -}}
{{- $ns := include "zdm.namespace" . -}}
{{- $hosts := list -}}
{{- range $i := until (int .Values.proxy.count) -}}
{{- $hosts = append $hosts (printf "%s-%d.%s.svc" $full $i $ns) -}}
{{- end -}}
{{- join "," $hosts -}}
{{- end -}}

{{/*
Refuses values that cannot work, each with what to do. Included by every template that
depends on them, so `helm template` and `helm install` fail before anything is applied.
*/}}
{{- define "zdm.validate" -}}
{{- $v := .Values -}}
{{- if lt (int $v.proxy.count) 1 -}}
{{- fail (printf "proxy.count must be 1 or more (it is %v): each is one proxy instance" $v.proxy.count) -}}
{{- end -}}
{{- if ne (toString $v.proxy.metricsEnabled) "true" -}}
{{- fail "proxy.metricsEnabled must be true: the readiness and liveness probes ask the health endpoints on the metrics port" -}}
{{- end -}}
{{- if and $v.proxy.readMode (ne (upper $v.proxy.readMode) "PRIMARY_ONLY") -}}
{{- fail (printf "proxy.readMode %s: zdm has no such setting, the routing follows the migration's phase (`zdm phase advance` to phase 3 reads target in the background); remove proxy.readMode" $v.proxy.readMode) -}}
{{- end -}}
{{- if and $v.proxy.primaryCluster (ne (upper $v.proxy.primaryCluster) "ORIGIN") -}}
{{- fail (printf "proxy.primaryCluster %s: zdm has no such setting, the routing follows the migration's phase (`zdm phase advance` to phase 4 makes target primary); remove proxy.primaryCluster" $v.proxy.primaryCluster) -}}
{{- end -}}
{{- if not (has $v.stateStore (list "cassandra" "file")) -}}
{{- fail (printf "stateStore must be cassandra or file, not %v" $v.stateStore) -}}
{{- end -}}
{{- if and (eq $v.stateStore "file") (gt (int $v.proxy.count) 1) -}}
{{- fail (printf "stateStore file keeps the migration's state on one instance's volume, and proxy.count is %d: use stateStore cassandra (the state in a keyspace on target), or proxy.count 1" (int $v.proxy.count)) -}}
{{- end -}}
{{- range $side := list "origin" "target" -}}
{{- $c := index $v $side -}}
{{- if not $c.secureConnectBundle.existingSecret -}}
{{- if not $c.contactPoints -}}
{{- fail (printf "%s.contactPoints is required: the addresses of %s's nodes (e.g. --set '%s.contactPoints={10.0.0.1,10.0.0.2}'), or %s.secureConnectBundle.existingSecret for an Astra DB" $side $side $side $side) -}}
{{- end -}}
{{- if kindIs "string" $c.contactPoints -}}
{{- fail (printf "%s.contactPoints must be a list of addresses, not the string %q" $side $c.contactPoints) -}}
{{- end -}}
{{- end -}}
{{- if and $c.tls.existingSecret (or $c.tls.certKey $c.tls.keyKey) (not (and $c.tls.certKey $c.tls.keyKey)) -}}
{{- fail (printf "%s.tls.certKey and %s.tls.keyKey go together (the Secret's keys of a client certificate and its key)" $side $side) -}}
{{- end -}}
{{- if and $c.tls.enabled $c.tls.existingSecret (not $c.tls.caKey) (not $c.tls.certKey) -}}
{{- fail (printf "%s.tls.existingSecret %s is used for nothing: set %s.tls.caKey (its key holding the nodes' CA) or certKey and keyKey (a client certificate)" $side $c.tls.existingSecret $side) -}}
{{- end -}}
{{- if and (not $c.tls.existingSecret) (or $c.tls.cert $c.tls.key) (not (and $c.tls.cert $c.tls.key)) -}}
{{- fail (printf "%s.tls.cert and %s.tls.key go together (a client certificate and its key)" $side $side) -}}
{{- end -}}
{{- end -}}
{{- $tls := $v.proxy.tls -}}
{{- if and $tls.enabled (not $tls.existingSecret) (not (and $tls.cert $tls.key)) -}}
{{- fail "proxy.tls.enabled needs proxy.tls.existingSecret (a kubernetes.io/tls Secret) or both proxy.tls.cert and proxy.tls.key (PEM)" -}}
{{- end -}}
{{- if and $tls.enabled $tls.requireClientAuth (not $tls.existingSecret) (not $tls.ca) -}}
{{- fail "proxy.tls.requireClientAuth needs the CA that signs client certificates: proxy.tls.ca, or ca.crt in proxy.tls.existingSecret" -}}
{{- end -}}
{{- range $var := $v.extraEnv -}}
{{- if and (hasPrefix "ZDM_" $var.name) (ne $var.name "ZDM_DEBUG") -}}
{{- fail (printf "extraEnv %s: zdm refuses zdm-proxy's ZDM_* settings beside a zdm.yaml; set it through the chart's values (extraConfig for what they do not name)" $var.name) -}}
{{- end -}}
{{- end -}}
{{- if not (has $v.proxy.logFormat (list "text" "json")) -}}
{{- fail (printf "proxy.logFormat %v: use text or json" $v.proxy.logFormat) -}}
{{- end -}}
{{- range $key := list "instances" "advertise_host" "listen_host" "listen_port" -}}
{{- if hasKey ($v.extraConfig.proxy | default dict) $key -}}
{{- fail (printf "extraConfig.proxy.%s: the chart sets it (from proxy.count and service.port, per instance)" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* zdm.yaml's origin or target section; paths are relative to zdm.yaml (/etc/zdm) */}}
{{- define "zdm.clusterConfig" -}}
{{- $c := .cluster -}}
{{- $out := dict "connect_timeout_s" $c.connectTimeoutS -}}
{{- if $c.secureConnectBundle.existingSecret -}}
{{- $_ := set $out "secure_connect_bundle" (printf "bundles/%s/%s" .side $c.secureConnectBundle.key) -}}
{{- else -}}
{{- $_ := set $out "contact_points" $c.contactPoints -}}
{{- $_ := set $out "port" (int $c.port) -}}
{{- if $c.tls.enabled -}}
{{- $tls := dict -}}
{{- if or (and $c.tls.existingSecret $c.tls.caKey) (and (not $c.tls.existingSecret) $c.tls.ca) -}}
{{- $_ := set $tls "ca_file" (printf "tls/%s/ca.crt" .side) -}}
{{- end -}}
{{- if or (and $c.tls.existingSecret $c.tls.certKey $c.tls.keyKey) (and (not $c.tls.existingSecret) $c.tls.cert) -}}
{{- $_ := set $tls "cert_file" (printf "tls/%s/tls.crt" .side) -}}
{{- $_ := set $tls "key_file" (printf "tls/%s/tls.key" .side) -}}
{{- end -}}
{{- if not $c.tls.verifyHostname -}}
{{- $_ := set $tls "verify_hostname" false -}}
{{- end -}}
{{- $_ := set $out "tls" $tls -}}
{{- end -}}
{{- end -}}
{{- if $c.localDc -}}
{{- $_ := set $out "local_dc" $c.localDc -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
zdm.yaml as the chart writes it, for every instance alike; the init container adds
proxy.instances, proxy.advertise_host and the usernames (files/render-zdm-yaml.py).
*/}}
{{/*
proxy.logLevel as zdm names it: zdm's levels, and zdm-proxy's (logrus) as zdm reads them
(zdm/config/zdmproxy_table.py; the tests compare the two)
*/}}
{{- define "zdm.logLevel" -}}
{{- $levels := dict "PANIC" "error" "FATAL" "error" "ERROR" "error" "WARN" "warning" "WARNING" "warning"
      "INFO" "info" "DEBUG" "debug" "TRACE" "debug" -}}
{{- $level := upper (toString .) -}}
{{- if not (hasKey $levels $level) -}}
{{- fail (printf "proxy.logLevel %v: use debug, info, warning or error (or zdm-proxy's TRACE, WARN, FATAL, PANIC)" .) -}}
{{- end -}}
{{- get $levels $level -}}
{{- end -}}

{{- define "zdm.config" -}}
{{- $v := .Values -}}
{{- $p := $v.proxy -}}
{{- $proxy := dict "listen_host" "0.0.0.0" "listen_port" (int $v.service.port)
      "metrics_enabled" true "metrics_address" "0.0.0.0" "metrics_port" (int $p.metricsPort)
      "metrics_prefix" $p.metricsPrefix "log_level" (include "zdm.logLevel" $p.logLevel) "log_format" $p.logFormat
      "max_client_connections" (int $p.maxClientConnections)
      "request_timeout_s" $p.requestTimeoutS "heartbeat_interval_s" $p.heartbeatIntervalS
      "replace_cql_functions" $p.replaceCqlFunctions
      "forward_client_credentials_to_origin" $p.forwardClientCredentialsToOrigin
      "token_aware" $p.tokenAware "secondary_write_failure" $p.secondaryWriteFailure -}}
{{- if $p.workers -}}
{{- $_ := set $proxy "workers" (int $p.workers) -}}
{{- end -}}
{{- if $p.tls.enabled -}}
{{- $tls := dict "cert_file" "tls/proxy/tls.crt" "key_file" "tls/proxy/tls.key" -}}
{{- if or $p.tls.existingSecret $p.tls.ca -}}
{{- if or $p.tls.ca $p.tls.requireClientAuth -}}
{{- $_ := set $tls "ca_file" "tls/proxy/ca.crt" -}}
{{- end -}}
{{- end -}}
{{- if $p.tls.requireClientAuth -}}
{{- $_ := set $tls "require_client_auth" true -}}
{{- end -}}
{{- $_ := set $proxy "tls" $tls -}}
{{- end -}}
{{- $config := dict
      "origin" (include "zdm.clusterConfig" (dict "cluster" $v.origin "side" "origin") | fromYaml)
      "target" (include "zdm.clusterConfig" (dict "cluster" $v.target "side" "target") | fromYaml)
      "proxy" $proxy
      "state_store" $v.stateStore "state_keyspace" $v.stateKeyspace
      "state_dir" "/var/lib/zdm/state" -}}
{{- if or $v.scope.keyspaces $v.scope.excludeTables -}}
{{- $_ := set $config "scope" (dict "keyspaces" $v.scope.keyspaces "exclude_tables" $v.scope.excludeTables) -}}
{{- end -}}
{{- $config = mergeOverwrite $config (deepCopy $v.extraConfig) -}}
{{- toYaml $config -}}
{{- end -}}
