#!/usr/bin/env bash
# The kind demo (docs/kind.md): a local Kubernetes cluster with Istio, the two
# services, Istio's addons and our Grafana dashboard. Every step can run again:
# it creates what is missing and updates what changed.
#
#   scripts/kind.sh up                      cluster, Istio, image, manifests, addons, dashboard
#   scripts/kind.sh policy NAME             apply istio/scenarios/NAME.yaml (one resource of istio/)
#   scripts/kind.sh policies                list those files
#   scripts/kind.sh fault POD [--errors X] [--status N] [--delay 2s] [--delay-share X] [--hang]
#                                           one pod's fault at run time, through its admin
#                                           surface (kubectl exec; no rollout)
#   scripts/kind.sh fault-clear [POD]       no fault on one pod, or on every calculator pod
#   scripts/kind.sh reset                   back to the base: istio/ and no fault anywhere
#   scripts/kind.sh load-start              steady traffic (k8s/components/loadgen: fortio, 10 requests/s
#                                           of POST /calcular through the ingress gateway)
#   scripts/kind.sh load-stop               delete the load generator
#   scripts/kind.sh down                    delete the cluster
#
# Environment: KIND_CLUSTER_NAME (meshcalc), IMAGE (meshcalc:dev: the image built, loaded and run),
# ISTIO_VERSION (the tag of istio/install/istio-kind.yaml).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${KIND_CLUSTER_NAME:-meshcalc}"
CONTEXT="kind-${CLUSTER}"
# The image the Deployments of k8s/base name; IMAGE replaces it everywhere when set.
MANIFEST_IMAGE="meshcalc:dev"
IMAGE="${IMAGE:-$MANIFEST_IMAGE}"
# The Istio release istio/install/istio-kind.yaml names (its tag), and of the addons below.
ISTIO_VERSION="${ISTIO_VERSION:-$(awk '$1 == "tag:" {print $2; exit}' "$ROOT/istio/install/istio-kind.yaml")}"
# k8s/kind/cluster.yaml pins a node image of this kind release.
KIND_VERSION="v0.33.0"
METRICS_SERVER_VERSION="v0.8.1"
NAMESPACE="meshcalc"
ISTIO_NAMESPACE="istio-system"
# One field manager for every apply: applying the base after a scenario
# removes what only the scenario set (server-side apply semantics).
FIELD_MANAGER="meshcalc"
DASHBOARDS_CONFIGMAP="meshcalc-grafana-dashboards"
ADDONS_URL="https://raw.githubusercontent.com/istio/istio/${ISTIO_VERSION}/samples/addons"
METRICS_SERVER_URL="https://github.com/kubernetes-sigs/metrics-server/releases/download/${METRICS_SERVER_VERSION}/components.yaml"
INGRESS_URL="http://localhost:8080"
SAMPLE_BODY='{"operacion":"sumar","numero1":2,"numero2":3}'
DEPLOYMENTS=(calculator-v1 calculator-v2 gateway)

say() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

install_hint() {
	case "$1" in
	docker) echo "Install Docker: https://docs.docker.com/engine/install/" ;;
	kind) echo "Install kind ${KIND_VERSION}: go install sigs.k8s.io/kind@${KIND_VERSION}, or a binary from https://kind.sigs.k8s.io/docs/user/quick-start/#installation" ;;
	kubectl) echo "Install kubectl: https://kubernetes.io/docs/tasks/tools/" ;;
	istioctl) echo "Install istioctl ${ISTIO_VERSION}: curl -L https://istio.io/downloadIstio | ISTIO_VERSION=${ISTIO_VERSION} sh - && export PATH=\"\$PWD/istio-${ISTIO_VERSION}/bin:\$PATH\"" ;;
	*) echo "Install $1 with your package manager" ;;
	esac
}

# Every missing tool reported at once, each with how to install it.
need() {
	local tool missing=()
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
	done
	# ${a[@]+"${a[@]}"}: an empty array under set -u is an error in macOS's bash 3.2.
	for tool in ${missing[@]+"${missing[@]}"}; do
		printf 'error: %s is not installed. %s\n' "$tool" "$(install_hint "$tool")" >&2
	done
	((${#missing[@]} == 0)) || exit 1
}

need_docker_daemon() {
	docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer: start Docker, or give your user access to it"
}

need_istioctl_version() {
	local version
	version="$(istioctl version --remote=false 2>/dev/null | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1 || true)"
	[[ "$version" == "$ISTIO_VERSION" ]] ||
		die "istioctl is ${version:-of an unknown version}, the manifests pin ${ISTIO_VERSION}. $(install_hint istioctl)"
}

k() { kubectl --context "$CONTEXT" "$@"; }
apply() { k apply --server-side --force-conflicts --field-manager="$FIELD_MANAGER" "$@"; }

cluster_exists() { kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; }

need_cluster() {
	need kubectl
	k get namespace "$NAMESPACE" >/dev/null 2>&1 || die "no cluster with the demo (context $CONTEXT): run scripts/kind.sh up first"
}

policy_names() {
	local file names=()
	for file in "$ROOT"/istio/scenarios/*.yaml; do
		names+=("$(basename "$file" .yaml)")
	done
	printf '%s\n' ${names[@]+"${names[@]}"}
}

create_cluster() {
	if cluster_exists; then
		say "kind cluster $CLUSTER exists"
	else
		say "creating kind cluster $CLUSTER"
		kind create cluster --name "$CLUSTER" --config "$ROOT/k8s/kind/cluster.yaml" --wait 180s
	fi
}

install_istio() {
	say "installing Istio ${ISTIO_VERSION} (istioctl install applies only what changed)"
	istioctl install --context "$CONTEXT" -y -f "$ROOT/istio/install/istio-kind.yaml"
	apply -f "$ROOT/istio/install/telemetry.yaml"
}

install_metrics_server() {
	# For the HorizontalPodAutoscalers: kind has no metrics-server.
	if ! k -n kube-system get deployment metrics-server >/dev/null 2>&1; then
		say "installing metrics-server ${METRICS_SERVER_VERSION}"
		apply -f "$METRICS_SERVER_URL"
	fi
	local args
	args="$(k -n kube-system get deployment metrics-server -o jsonpath='{.spec.template.spec.containers[0].args}')"
	if [[ "$args" != *--kubelet-insecure-tls* ]]; then
		# kind's kubelets serve self-signed certificates.
		k -n kube-system patch deployment metrics-server --type json \
			-p '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]'
	fi
}

build_image() {
	[[ -f "$ROOT/Dockerfile" ]] || die "no Dockerfile at $ROOT: the image $IMAGE is built from it"
	say "building $IMAGE"
	docker build -t "$IMAGE" "$ROOT"
	say "loading $IMAGE into kind (skipped by kind when the node has it)"
	kind load docker-image "$IMAGE" --name "$CLUSTER"
}

# The image's id goes into each Deployment's pod template: its pods roll exactly when they do
# not run this build, whatever an earlier run did or failed to do. (The annotation is not in
# the manifests, so applying them again keeps it.)
IMAGE_ID_ANNOTATION="meshcalc.dev/image-id"
roll_to_image() {
	local id deployment current
	id="$(docker image inspect --format '{{.Id}}' "$IMAGE")"
	for deployment in "${DEPLOYMENTS[@]}"; do
		current="$(k -n "$NAMESPACE" get deployment "$deployment" \
			-o jsonpath="{.spec.template.metadata.annotations.${IMAGE_ID_ANNOTATION//./\\.}}")"
		if [[ "$current" != "$id" ]]; then
			say "$deployment: rolling to image $id"
			k -n "$NAMESPACE" patch deployment "$deployment" --type merge \
				-p "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"$IMAGE_ID_ANNOTATION\":\"$id\"}}}}}"
		fi
	done
}

# k8s/base with IMAGE in place of the image its Deployments name.
apply_base() {
	k kustomize "$ROOT/k8s/base" | sed "s|^\( *image: \)${MANIFEST_IMAGE}\$|\1${IMAGE}|" | apply -f -
}

# Our Deployments leave their scale to their HPAs (same name; no spec.replicas, so that an
# apply never resets what an HPA chose): a new one starts with one pod and its HPA raises
# it to minReplicas within its sync period (15 s).
wait_for_autoscaler() {
	local deployment=$1 minimum replicas attempt
	minimum="$(k -n "$NAMESPACE" get hpa "$deployment" -o jsonpath='{.spec.minReplicas}')"
	for attempt in $(seq 1 60); do
		replicas="$(k -n "$NAMESPACE" get deployment "$deployment" -o jsonpath='{.spec.replicas}')"
		if [[ "${replicas:-0}" -ge "${minimum:-1}" ]]; then
			return 0
		fi
		sleep 2
	done
	die "deployment/$deployment has ${replicas:-no} replicas after $attempt tries, below its HPA's minReplicas ${minimum:-1}: kubectl --context $CONTEXT -n $NAMESPACE describe hpa $deployment"
}

apply_manifests() {
	say "applying k8s/base, istio/ and istio/ingress/"
	apply_base
	apply -k "$ROOT/istio"
	# The ingress gateway's own policy (edge limits, public paths), in its namespace.
	apply -k "$ROOT/istio/ingress"
	roll_to_image
	local deployment
	for deployment in "${DEPLOYMENTS[@]}"; do
		wait_for_autoscaler "$deployment"
		k -n "$NAMESPACE" rollout status "deployment/$deployment" --timeout=300s
	done
}

install_addons() {
	local addon
	for addon in prometheus jaeger grafana kiali; do
		if k -n "$ISTIO_NAMESPACE" get deployment "$addon" >/dev/null 2>&1; then
			say "addon $addon is installed"
			continue
		fi
		say "installing addon $addon from Istio ${ISTIO_VERSION}"
		# Istio's docs: a first apply of the addons can race; a second one settles it.
		apply -f "$ADDONS_URL/$addon.yaml" || apply -f "$ADDONS_URL/$addon.yaml"
	done
	enable_exemplars
	load_slo_rules
}

load_slo_rules() {
	# slo/rules.yaml, the file the local Prometheus loads too, as the addon's rule file
	# /etc/config/rules (its ConfigMap's key `rules`, already in its prometheus.yml's
	# rule_files); the addon's config reloader makes Prometheus reload it. Re-run after an edit.
	say "loading slo/rules.yaml into the addons' Prometheus (ConfigMap prometheus, key rules)"
	local patch
	patch="$(mktemp)"
	{
		printf 'data:\n  rules: |\n'
		sed 's/^/    /' "$ROOT/slo/rules.yaml"
	} >"$patch"
	k -n "$ISTIO_NAMESPACE" patch configmap prometheus --type merge --patch-file "$patch"
	rm -f "$patch"
}

enable_exemplars() {
	# The addons' Prometheus keeps no exemplars unless told: the latency
	# panels' links to traces need them.
	local names index args
	args="$(k -n "$ISTIO_NAMESPACE" get deployment prometheus -o jsonpath='{.spec.template.spec.containers[?(@.name=="prometheus-server")].args}')"
	if [[ "$args" == *exemplar-storage* ]]; then
		return 0
	fi
	names="$(k -n "$ISTIO_NAMESPACE" get deployment prometheus -o jsonpath='{range .spec.template.spec.containers[*]}{.name}{"\n"}{end}')"
	index="$(grep -nx prometheus-server <<<"$names" | cut -d: -f1)"
	[[ -n "$index" ]] || die "the addons' Prometheus has no container prometheus-server"
	k -n "$ISTIO_NAMESPACE" patch deployment prometheus --type json \
		-p "[{\"op\":\"add\",\"path\":\"/spec/template/spec/containers/$((index - 1))/args/-\",\"value\":\"--enable-feature=exemplar-storage\"}]"
}

import_dashboard() {
	say "importing dashboards/ into Grafana (ConfigMap $DASHBOARDS_CONFIGMAP)"
	k -n "$ISTIO_NAMESPACE" create configmap "$DASHBOARDS_CONFIGMAP" --from-file="$ROOT/dashboards" \
		--dry-run=client -o yaml | apply -f -
	apply -f "$ROOT/k8s/addons/grafana-provisioning.yaml"
	k -n "$ISTIO_NAMESPACE" patch deployment grafana --type strategic \
		--patch-file "$ROOT/k8s/addons/grafana-deployment-patch.yaml"
	local addon
	for addon in prometheus jaeger grafana kiali; do
		k -n "$ISTIO_NAMESPACE" rollout status "deployment/$addon" --timeout=300s
	done
}

wait_for_ingress() {
	say "waiting for $INGRESS_URL"
	local attempt
	for attempt in $(seq 1 60); do
		if curl -fsS -o /dev/null -X POST "$INGRESS_URL/calcular" -H 'Content-Type: application/json' -d "$SAMPLE_BODY" 2>/dev/null; then
			return 0
		fi
		sleep 2
	done
	die "no answer from $INGRESS_URL after $attempt tries: kubectl --context $CONTEXT -n $NAMESPACE get pods"
}

print_next_steps() {
	cat <<EOF

meshcalc runs on kind. Try:

  curl -s -X POST $INGRESS_URL/calcular -H 'Content-Type: application/json' -d '$SAMPLE_BODY'
  curl -s -X POST $INGRESS_URL/calcular -H 'Content-Type: application/json' -H 'x-canary: always' -d '$SAMPLE_BODY'
  open $INGRESS_URL/ in a browser

Watch it:

  istioctl dashboard kiali   --context $CONTEXT    # graph of namespace $NAMESPACE
  istioctl dashboard grafana --context $CONTEXT    # folder meshcalc
  istioctl dashboard jaeger  --context $CONTEXT    # service gateway or calculator

Scenarios (policy and faults, the names of make scenarios): make kind-scenario NAME=...
Back to the base: scripts/kind.sh reset. Remove everything: scripts/kind.sh down.
EOF
}

up() {
	need docker kind kubectl istioctl curl
	need_docker_daemon
	need_istioctl_version
	create_cluster
	install_istio
	install_metrics_server
	build_image
	apply_manifests
	install_addons
	import_dashboard
	wait_for_ingress
	print_next_steps
}

# One policy file of a scenario; a scenario (make kind-scenario NAME=) is policy files and faults.
policy() {
	local name=${1:-}
	[[ -n "$name" ]] || die "usage: scripts/kind.sh policy NAME, NAME one of: $(policy_names | paste -sd ' ' -)"
	local file="$ROOT/istio/scenarios/$name.yaml"
	[[ -f "$file" ]] || die "no policy file $name; one of: $(policy_names | paste -sd ' ' -)"
	need_cluster
	apply -n "$NAMESPACE" -f "$file"
	say "$name applied (scripts/kind.sh reset restores the base):"
	# awk, not sed: BSD sed (macOS) refuses commands after q on one line.
	awk '/^apiVersion/ {exit} /^#/ {sub(/^# ?/, "  "); print}' "$file" >&2
}

# A pod by its name, or a Deployment's first pod.
calculator_pod() {
	local name=$1
	if k -n "$NAMESPACE" get pod "$name" >/dev/null 2>&1; then
		printf '%s\n' "$name"
		return
	fi
	local pod
	pod="$(k -n "$NAMESPACE" get pods -l "app=calculator" -o name | sed -n "s|^pod/\($name-[a-z0-9]*-[a-z0-9]*\)$|\1|p" | head -n 1)"
	[[ -n "$pod" ]] || die "no calculator pod or Deployment named $name: $(k -n "$NAMESPACE" get pods -l app=calculator -o name | tr '\n' ' ')"
	printf '%s\n' "$pod"
}

# calculator/admin_client.py inside the pod: it reaches the pod's own ADMIN_BIND (loopback).
admin_client() {
	local pod=$1
	shift
	k -n "$NAMESPACE" exec "$pod" -c calculator -- python -m calculator.admin_client "$@"
}

fault() {
	local name=${1:-}
	[[ -n "$name" ]] || die "usage: scripts/kind.sh fault POD [--errors X] [--status N] [--delay 2s] [--delay-share X] [--hang]"
	shift
	need_cluster
	admin_client "$(calculator_pod "$name")" set "$@"
}

fault_clear() {
	need_cluster
	local pod
	if [[ -n "${1:-}" ]]; then
		admin_client "$(calculator_pod "$1")" clear
		return
	fi
	for pod in $(k -n "$NAMESPACE" get pods -l app=calculator -o jsonpath='{.items[*].metadata.name}'); do
		admin_client "$pod" clear
	done
}

reset() {
	need_cluster
	say "restoring the base policy (istio/, istio/ingress/) and clearing every calculator pod's fault"
	apply -k "$ROOT/istio"
	apply -k "$ROOT/istio/ingress"
	fault_clear
}

# The optional load generator: a kustomize component, applied into the demo's namespace.
LOADGEN="k8s/components/loadgen"

load_start() {
	need_cluster
	say "starting the load generator ($LOADGEN: fortio, 10 requests/s of POST /calcular through the ingress gateway)"
	k kustomize "$ROOT/$LOADGEN" | apply -n "$NAMESPACE" -f -
	k -n "$NAMESPACE" rollout status deployment/loadgen --timeout=180s
	say "Kiali's graph and Grafana's rate panels fill within a minute; scripts/kind.sh load-stop stops it"
}

load_stop() {
	need_cluster
	k kustomize "$ROOT/$LOADGEN" | k delete -n "$NAMESPACE" --ignore-not-found -f -
}

down() {
	need docker kind
	need_docker_daemon
	if cluster_exists; then
		kind delete cluster --name "$CLUSTER"
	else
		say "no kind cluster $CLUSTER"
	fi
}

main() {
	local command=${1:-}
	shift || true
	case "$command" in
	up) up ;;
	policy) policy "$@" ;;
	policies) policy_names ;;
	fault) fault "$@" ;;
	fault-clear) fault_clear "$@" ;;
	reset) reset ;;
	load-start) load_start ;;
	load-stop) load_stop ;;
	down) down ;;
	*)
		awk 'NR == 1 {next} /^set -euo/ {exit} /^#/ {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}" >&2
		exit 2
		;;
	esac
}

main "$@"
