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

# One policy file of istio/scenarios/, and wait until the sidecars have it.
policy() {
	local what=routes
	if grep -q '^kind: DestinationRule' "$ROOT/istio/scenarios/$1.yaml"; then
		what=cluster
	fi
	changing "$what" "$KIND_SH" policy "$1"
}

calculator_requests() {
	# /calcular requests every v2 pod has answered, from each one's own /metrics (read inside it).
	local pod
	for pod in $(kubectl --context "$CONTEXT" -n "$NAMESPACE" get pods -l app=calculator,version=v2 -o jsonpath='{.items[*].metadata.name}'); do
		kubectl --context "$CONTEXT" -n "$NAMESPACE" exec "$pod" -c calculator -- \
			python -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8080/metrics").read().decode())'
	done | awk '/^http_server_requests_total\{/ && /route="\/calcular"/ {sum += $2} END {printf "%d\n", sum}'
}

# A port-forward to a Service of istio-system, ended when the script ends; waits (bounded) until it answers.
FORWARDS=()
cleanup() {
	local pid
	rm -rf "$RESULTS"
	for pid in ${FORWARDS[@]+"${FORWARDS[@]}"}; do
		kill "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT
forward() {
	local service=$1 local_port=$2 remote_port=$3 path=$4 tries
	kubectl --context "$CONTEXT" -n istio-system port-forward "svc/$service" "$local_port:$remote_port" >/dev/null 2>&1 &
	FORWARDS+=("$!")
	for tries in $(seq 1 30); do
		curl -sf -o /dev/null "http://127.0.0.1:$local_port$path" && return 0
		sleep 1
	done
	fail "svc/$service did not answer on a port-forward after $tries s"
}

check_observability() {
	say "observability: Prometheus scrapes every pod, the dashboard's queries answer, Jaeger and Kiali see both services"
	forward prometheus 19090 9090 /-/ready
	local up pods
	up="$(curl -sf 'http://127.0.0.1:19090/api/v1/query' --data-urlencode "query=sum(up{namespace=\"$NAMESPACE\"})" |
		python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)')"
	pods="$(kubectl --context "$CONTEXT" -n "$NAMESPACE" get pods --field-selector=status.phase=Running -o name | wc -l | tr -d ' ')"
	((up >= pods)) || fail "Prometheus: $up targets up in $NAMESPACE for $pods running pods"
	# slo/rules.yaml is loaded (scripts/kind.sh load_slo_rules): its groups, as many rules, healthy.
	# The config reloader may take a minute to see the ConfigMap change.
	local attempt
	for attempt in $(seq 1 30); do
		curl -sf 'http://127.0.0.1:19090/api/v1/rules' | python3 -c '
import json, sys, yaml
want = yaml.safe_load(open(sys.argv[1]))["groups"]
loaded = {g["name"]: g for g in json.load(sys.stdin)["data"]["groups"]}
for group in want:
    got = loaded.get(group["name"])
    if got is None or len(got["rules"]) != len(group["rules"]) or any(r.get("health") == "err" for r in got["rules"]):
        sys.exit(1)' "$ROOT/slo/rules.yaml" && break
		((attempt < 30)) || fail "Prometheus has not loaded slo/rules.yaml (api/v1/rules); scripts/kind.sh up loads it"
		sleep 2
	done
	# Every query of the dashboard, as Grafana sends it (manifestcheck reads the panels).
	python3 - "$ROOT/dashboards/meshcalc.json" "$NAMESPACE" <<'PY' || fail "the dashboard's queries (above)"
import json, sys, urllib.parse, urllib.request
from manifestcheck.dashboard import queries, substitute_variables, variables
dashboard = json.load(open(sys.argv[1]))
values = {**variables(dashboard), "namespace": sys.argv[2]}
failed, empty, red = [], [], 0
for query in queries(dashboard):
    expr = substitute_variables(query.expr, values)
    url = "http://127.0.0.1:19090/api/v1/query?query=" + urllib.parse.quote(expr)
    answer = json.load(urllib.request.urlopen(url, timeout=20))
    if answer.get("status") != "success":
        failed.append(f"{query.resource}: {answer.get('error')}")
    elif not answer["data"]["result"]:
        empty.append(query.resource)
        # The RED panels must show the traffic the smoke test sent.
        red += any(name in expr for name in ("istio_requests_total", "http_server_requests_total"))
print(f"dashboard: {len(queries(dashboard))} queries, {len(failed)} failed, {len(empty)} empty: {empty}")
sys.exit(1 if failed or red else 0)
PY
	forward tracing 16686 80 /jaeger/api/services
	local service
	for service in gateway calculator; do
		curl -sf "http://127.0.0.1:16686/jaeger/api/traces?service=$service&limit=1&lookback=1h" |
			python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin).get("data") else 1)' ||
			fail "Jaeger holds no trace of service $service"
	done
	forward kiali 20001 20001 /kiali/api/status
	curl -sf "http://127.0.0.1:20001/kiali/api/namespaces/graph?namespaces=$NAMESPACE&graphType=versionedApp&duration=600s" |
		python3 -c '
import json, sys
nodes = [n["data"] for n in json.load(sys.stdin)["elements"]["nodes"]]
versions = {n.get("version") for n in nodes if n.get("app") == "calculator"}
sys.exit(0 if {"v1", "v2"} <= versions else 1)' ||
		fail "Kiali's graph of $NAMESPACE does not show calculator v1 and v2"
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
	say "virtual-service-calculator-100-0: only v1"
	policy virtual-service-calculator-100-0
	posts "$RESULTS/c100" 20
	[[ "$(count "$RESULTS/c100" '^200 v1 ')" == 20 ]] || fail "virtual-service-calculator-100-0: $(sort "$RESULTS/c100" | uniq -c)"

	say "virtual-service-calculator-0-100: only v2"
	policy virtual-service-calculator-0-100
	posts "$RESULTS/c0" 20
	[[ "$(count "$RESULTS/c0" '^200 v2 ')" == 20 ]] || fail "virtual-service-calculator-0-100: $(sort "$RESULTS/c0" | uniq -c)"

	say "virtual-service-calculator-50-50: both versions"
	policy virtual-service-calculator-50-50
	posts "$RESULTS/c50" 40
	[[ "$(count "$RESULTS/c50" '^200 v1 ')" -gt 0 && "$(count "$RESULTS/c50" '^200 v2 ')" -gt 0 ]] ||
		fail "virtual-service-calculator-50-50: $(sort "$RESULTS/c50" | uniq -c)"
}

check_faults() {
	say "virtual-service-calculator-fault-abort: about half 503, never retried"
	policy virtual-service-calculator-fault-abort
	posts "$RESULTS/abort" 30
	[[ "$(count "$RESULTS/abort" '^503 ')" -gt 0 && "$(count "$RESULTS/abort" '^200 ')" -gt 0 ]] ||
		fail "fault-abort: $(sort "$RESULTS/abort" | uniq -c)"

	say "virtual-service-calculator-fault-delay: all 200, some 2 s slower"
	policy virtual-service-calculator-fault-delay
	posts "$RESULTS/delay" 20
	[[ "$(count "$RESULTS/delay" '^200 ')" == 20 ]] || fail "fault-delay: $(sort "$RESULTS/delay" | uniq -c)"
	awk '$3 >= 1.9 {slow++} END {exit slow > 0 ? 0 : 1}' "$RESULTS/delay" || fail "fault-delay: no request took 2 s"
}

check_mirror() {
	say "virtual-service-calculator-mirror-v2: v1 answers, v2 gets a copy"
	policy virtual-service-calculator-mirror-v2
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
	say "one v1 pod failing half of the time (make kind-fault): the base hides it"
	"$KIND_SH" fault calculator-v1 --errors 0.5
	posts "$RESULTS/hidden" 40
	# Retries, then the ejection: at most the rare request whose retries all land on it (URX).
	[[ "$(count "$RESULTS/hidden" '^200 ')" -ge 39 ]] || fail "base with a half-failing pod: $(sort "$RESULTS/hidden" | uniq -c)"
	say "destination-rule-calculator-lenient-ejection (no ejection), then virtual-service-calculator-no-retries: its 503s reach the client"
	policy destination-rule-calculator-lenient-ejection
	policy virtual-service-calculator-no-retries
	posts "$RESULTS/noretry" 40
	[[ "$(count "$RESULTS/noretry" '^503 ')" -gt 0 ]] || fail "virtual-service-calculator-no-retries: no 503 in 40 requests with a pod failing half"
	"$KIND_SH" fault-clear
}

check_circuit_breaker() {
	say "destination-rule-calculator-circuit-breaker with a slow v2: parallel requests overflow (503, x-envoy-overloaded)"
	"$KIND_SH" fault calculator-v2 --delay 0.5s
	policy destination-rule-calculator-circuit-breaker
	: >"$RESULTS/breaker"
	local i
	for ((i = 0; i < 20; i++)); do
		post >>"$RESULTS/breaker" &
	done
	wait
	grep -q '^503 .* true$' "$RESULTS/breaker" || fail "destination-rule-calculator-circuit-breaker: no overflow: $(sort "$RESULTS/breaker" | uniq -c)"
	"$KIND_SH" fault-clear
}

check_base
check_edge
check_canaries
check_faults
check_mirror
check_retries
check_circuit_breaker
check_observability
# The last scenario replaced the DestinationRule: the reset shows in the clusters.
changing cluster "$KIND_SH" reset
check_base
say "every scenario behaved as described"
