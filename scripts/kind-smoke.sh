#!/usr/bin/env bash
# Checks, through the ingress of a running kind demo (scripts/kind.sh up), that
# each scenario does what istio/scenarios/ says; ends with the base restored.
# Run by .github/workflows/kind.yml, or by hand: scripts/kind-smoke.sh.
# Every loop is bounded; a probability-based check has odds of a false failure
# below one in a million.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIND_SH="$ROOT/scripts/kind.sh"
CONTEXT="kind-${KIND_CLUSTER_NAME:-meshcalc}"
NAMESPACE="meshcalc"
URL="http://localhost:8080/calcular"
BODY='{"operacion":"sumar","numero1":2,"numero2":3}'
RESULTS="$(mktemp -d)"
trap 'rm -rf "$RESULTS"' EXIT

say() { printf '==> %s\n' "$*" >&2; }
fail() {
	printf 'FAILED: %s\n' "$*" >&2
	exit 1
}

# One POST through the ingress; prints "STATUS VERSION SECONDS OVERLOADED".
post() {
	local headers status version overloaded seconds
	headers="$(mktemp -p "$RESULTS")"
	seconds="$(curl -sS -o /dev/null -D "$headers" -w '%{time_total}' -X POST "$URL" \
		-H 'Content-Type: application/json' "$@" -d "$BODY")"
	status="$(awk 'toupper($1) ~ /^HTTP\// {code=$2} END {print code}' "$headers")"
	version="$(awk -F': *' 'tolower($1) == "x-calculator-version" {gsub(/\r/, "", $2); print $2}' "$headers")"
	overloaded="$(awk -F': *' 'tolower($1) == "x-envoy-overloaded" {gsub(/\r/, "", $2); print $2}' "$headers")"
	printf '%s %s %s %s\n' "$status" "${version:--}" "$seconds" "${overloaded:--}"
}

# N sequential POSTs into the file $1 (extra arguments go to curl).
posts() {
	local file=$1 count=$2
	shift 2
	: >"$file"
	local i
	for ((i = 0; i < count; i++)); do
		post "$@" >>"$file"
	done
}

count() { grep -c -- "$2" "$1" || true; }

# A digest of what the gateway's sidecars hold for the calculator: their routes
# (VirtualService) or their clusters (DestinationRule).
proxy_config() {
	local what=$1 pod
	for pod in $(kubectl --context "$CONTEXT" -n "$NAMESPACE" get pods -l app=gateway -o jsonpath='{.items[*].metadata.name}'); do
		istioctl --context "$CONTEXT" proxy-config "$what" "$pod.$NAMESPACE" -o json
	done | sha256sum
}

# Runs a command that changes the mesh policy, then waits (bounded) until every
# gateway sidecar holds a different configuration: istiod has pushed it.
changing() {
	local what=$1 before tries
	shift
	before="$(proxy_config "$what")"
	"$@"
	for tries in $(seq 1 60); do
		[[ "$(proxy_config "$what")" != "$before" ]] && return 0
		sleep 1
	done
	fail "the gateway's sidecars still have the old $what after $tries s: $*"
}

scenario() {
	local what=routes
	if grep -q '^kind: DestinationRule' "$ROOT/istio/scenarios/$1.yaml"; then
		what=cluster
	fi
	changing "$what" "$KIND_SH" scenario "$1"
}

calculator_requests() {
	# /calcular requests v2 has answered, from its own /metrics (read inside the pod).
	kubectl --context "$CONTEXT" -n "$NAMESPACE" exec deploy/calculator-v2 -c calculator -- \
		python -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8080/metrics").read().decode())' |
		awk '/^http_server_requests_total\{/ && /route="\/calcular"/ {sum += $2} END {printf "%d\n", sum}'
}

check_base() {
	say "base: 90/10 split, x-canary: always goes to v2"
	posts "$RESULTS/base" 20
	[[ "$(count "$RESULTS/base" '^200 ')" == 20 ]] || fail "base: not every answer is 200: $(sort "$RESULTS/base" | uniq -c)"
	posts "$RESULTS/header" 10 -H 'x-canary: always'
	[[ "$(count "$RESULTS/header" '^200 v2 ')" == 10 ]] || fail "x-canary: always did not reach v2 every time: $(sort "$RESULTS/header" | uniq -c)"
}

# STATUS CONTENT-TYPE of one request through the ingress (extra arguments go to curl).
edge() {
	curl -sS -o /dev/null -w '%{http_code} %{content_type}\n' "$@"
}

check_edge() {
	say "the ingress's own policy (istio/ingress/): public paths only, JSON errors, one body limit"
	local path answer big
	for path in /metrics /healthz /readyz /resultados; do
		answer="$(edge "http://localhost:8080$path")"
		[[ "$answer" == "403 application/json" ]] || fail "GET $path through the ingress: $answer, expected 403 JSON"
	done
	answer="$(edge http://localhost:8080/openapi.json)"
	[[ "$answer" == "200 application/json" ]] || fail "GET /openapi.json through the ingress: $answer"
	big="$(printf '%*s' 2000 '')"
	answer="$(edge -X POST "$URL" -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' -d "{$big}")"
	[[ "$answer" == "413 application/json" ]] || fail "a chunked 2 KB body through the ingress: $answer, expected 413 JSON"
	answer="$(edge -X POST "$URL" -H 'Content-Type: application/json' -d "$(printf '[%.0s' $(seq 1000))")"
	[[ "$answer" == "400 application/json" ]] || fail "the query of death: $answer, expected 400 JSON"
}

check_canaries() {
	say "canary-100-0: only v1"
	scenario canary-100-0
	posts "$RESULTS/c100" 20
	[[ "$(count "$RESULTS/c100" '^200 v1 ')" == 20 ]] || fail "canary-100-0: $(sort "$RESULTS/c100" | uniq -c)"

	say "canary-0-100: only v2"
	scenario canary-0-100
	posts "$RESULTS/c0" 20
	[[ "$(count "$RESULTS/c0" '^200 v2 ')" == 20 ]] || fail "canary-0-100: $(sort "$RESULTS/c0" | uniq -c)"

	say "canary-50-50: both versions"
	scenario canary-50-50
	posts "$RESULTS/c50" 40
	[[ "$(count "$RESULTS/c50" '^200 v1 ')" -gt 0 && "$(count "$RESULTS/c50" '^200 v2 ')" -gt 0 ]] ||
		fail "canary-50-50: $(sort "$RESULTS/c50" | uniq -c)"
}

check_faults() {
	say "fault-abort: about half 503, never retried"
	scenario fault-abort
	posts "$RESULTS/abort" 30
	[[ "$(count "$RESULTS/abort" '^503 ')" -gt 0 && "$(count "$RESULTS/abort" '^200 ')" -gt 0 ]] ||
		fail "fault-abort: $(sort "$RESULTS/abort" | uniq -c)"

	say "fault-delay: all 200, some 2 s slower"
	scenario fault-delay
	posts "$RESULTS/delay" 20
	[[ "$(count "$RESULTS/delay" '^200 ')" == 20 ]] || fail "fault-delay: $(sort "$RESULTS/delay" | uniq -c)"
	awk '$3 >= 1.9 {slow++} END {exit slow > 0 ? 0 : 1}' "$RESULTS/delay" || fail "fault-delay: no request took 2 s"
}

check_mirror() {
	say "mirror-v1-to-v2: v1 answers, v2 gets a copy"
	scenario mirror-v1-to-v2
	local before after tries
	before="$(calculator_requests)"
	posts "$RESULTS/mirror" 10
	[[ "$(count "$RESULTS/mirror" '^200 v1 ')" == 10 ]] || fail "mirror: $(sort "$RESULTS/mirror" | uniq -c)"
	# The copies are fire-and-forget: poll v2's counter for a bounded time.
	for tries in $(seq 1 10); do
		after="$(calculator_requests)"
		((after - before >= 10)) && break
		sleep 1
	done
	((after - before >= 10)) || fail "mirror: v2 answered $((after - before)) copies of 10 after $tries polls"
}

check_retries() {
	say "retries-off with the app failing half of the time: its 503s reach the client"
	"$KIND_SH" app-faults 0.5 0
	scenario retries-off
	posts "$RESULTS/noretry" 30
	[[ "$(count "$RESULTS/noretry" '^503 ')" -gt 0 ]] || fail "retries-off: no 503 in 30 requests at 50% failures"
	"$KIND_SH" app-faults off
}

check_circuit_breaker() {
	say "circuit-breaker-tight with a slow app: parallel requests overflow (503, x-envoy-overloaded)"
	"$KIND_SH" app-faults 0 0.5
	scenario circuit-breaker-tight
	: >"$RESULTS/breaker"
	local i
	for ((i = 0; i < 20; i++)); do
		post >>"$RESULTS/breaker" &
	done
	wait
	grep -q '^503 .* true$' "$RESULTS/breaker" || fail "circuit-breaker-tight: no overflow: $(sort "$RESULTS/breaker" | uniq -c)"
	"$KIND_SH" app-faults off
}

check_base
check_edge
check_canaries
check_faults
check_mirror
check_retries
check_circuit_breaker
# The last scenario replaced the DestinationRule: the reset shows in the clusters.
changing cluster "$KIND_SH" reset
check_base
say "every scenario behaved as described"
