# Two commands for a newcomer: `make up` runs the demo, `make test` runs every test.
# Each creates the virtual environment it needs in .venv first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# make up and the commands beside it need the services and the mesh only (about 170 MB);
# make test, the benchmarks and the reliability suite add the test tools (about 850 MB in all).
RUN_INSTALLED := $(VENV)/.installed-run
INSTALLED := $(VENV)/.installed
# checkov pins packages our tree cannot share (packaging<24): its own venv.
CHECKOV := .venv-checkov/.installed

.PHONY: help up test venv clean scenario scenarios status demo restart fault fault-clear load top reliability reliability-quick bench bench-quick

help: ## this list
	@awk -F':.*## ' '/^[a-z-]+:.*## / {printf "  make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

up: $(RUN_INSTALLED) ## the whole mesh on this machine, until Ctrl-C (INGRESS_PORT=8080)
	$(BIN)/python -m localmesh up

# While `make up` runs, in another terminal:
scenario: $(RUN_INSTALLED) ## apply a scenario (policy and faults) to the running mesh: NAME= (NAME=base restores)
	@test -n "$(NAME)" || { echo "usage: make scenario NAME=<one of: $$($(BIN)/python -m localmesh scenarios | cut -d' ' -f1 | tr '\n' ' ')>"; exit 2; }
	$(BIN)/python -m localmesh scenario $(NAME)

scenarios: $(RUN_INSTALLED) ## the scenarios, one line each (the same names for scenario, demo, kind-scenario)
	@$(BIN)/python -m localmesh scenarios

status: $(RUN_INSTALLED) ## what runs where: replicas, faults, Envoys, the active scenario
	@$(BIN)/python -m localmesh status

restart: $(RUN_INSTALLED) ## a rolling restart of every replica, as kubectl rollout restart
	$(BIN)/python -m localmesh restart

# One calculator replica's fault, at run time, no restart (every replica when POD is left out):
#   make fault POD=calculator-v1-0 ERRORS=0.5 [STATUS=503] [DELAY=2s] [DELAY_SHARE=0.5] [HANG=1]
# Probes are never faulted; `make status` shows each replica's fault.
FAULT_OPTIONS = $(if $(ERRORS),--errors $(ERRORS)) $(if $(STATUS),--status $(STATUS)) \
	$(if $(DELAY),--delay $(DELAY)) $(if $(DELAY_SHARE),--delay-share $(DELAY_SHARE)) $(if $(HANG),--hang)

fault: $(RUN_INSTALLED) ## break a replica at run time: POD= ERRORS= STATUS= DELAY= DELAY_SHARE= HANG=1
	@$(BIN)/python -m localmesh fault $(POD) $(FAULT_OPTIONS)

fault-clear: $(RUN_INSTALLED) ## heal every replica (or POD=)
	@$(BIN)/python -m localmesh fault-clear $(POD)

# Steady load through the ingress while `make up` runs, a line of answers a second; Ctrl-C stops it.
#   make load [RATE=10] [DURATION=60s] [CANARY=1]
load: $(RUN_INSTALLED) ## steady load through the ingress with a live line: RATE= DURATION= CANARY=1
	@$(BIN)/python -m localmesh load $(if $(RATE),--rate $(RATE)) $(if $(DURATION),--duration $(DURATION)) $(if $(CANARY),--canary)

# The running mesh per workload and version, a frame a second, as `linkerd viz top` shows one:
# Envoys' and replicas' counters, and Prometheus' percentiles and SLO burn rates where it runs.
top: $(RUN_INSTALLED) ## live view: requests/s, success, p50/p99, retries, ejections, overflows, burn rate
	@$(BIN)/python -m localmesh top

# One scenario applied to a fresh local mesh (KIND=1: the kind cluster), loaded
# with hey and judged (docs/fault-tolerance.md); exit 0 exactly when its
# expectation held. JSON=1 prints the report as JSON.
demo: $(RUN_INSTALLED) ## a scenario on a fresh mesh, loaded and judged: NAME= [JSON=1] [KIND=1]
	@test -n "$(NAME)" || { echo "usage: make demo NAME=<one of: $$($(BIN)/python -m localmesh scenarios | cut -d' ' -f1 | tr '\n' ' ')>"; exit 2; }
	$(BIN)/python -m localmesh demo $(NAME) $(if $(JSON),--json) $(if $(KIND),--kind)

test: $(INSTALLED) $(CHECKOV) ## every test (what CI runs, with .ci/run installing the tools)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

venv: $(INSTALLED) ## the virtual environment with the test tools

# constraints.txt pins every package of the tree, so installs are repeatable.
$(RUN_INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[mesh]'
	touch $@

$(INSTALLED): $(RUN_INSTALLED)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[mesh,bench,test]'
	touch $@

$(CHECKOV): tests/reliability/checkov-constraints.txt
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet --disable-pip-version-check -c tests/reliability/checkov-constraints.txt checkov==3.3.30
	touch $@

# The reliability figures of RELIABILITY.md: the quick profile runs in make
# test; the full one (30 s overload, 100k requests, 5,000 generated requests)
# takes about 25 minutes on 2 cores.
reliability-quick: $(INSTALLED) $(CHECKOV) ## the reliability suite, quick profile (in make test)
	$(BIN)/python -m pytest tests/reliability

reliability: $(INSTALLED) $(CHECKOV) ## the reliability suite, full profile (about 25 minutes)
	RELIABILITY_PROFILE=full $(BIN)/python -m pytest tests/reliability

# What the mesh and the telemetry cost, side by side (BENCHMARKS.md); needs Debian's wrk.
bench: $(INSTALLED) ## the benchmarks of BENCHMARKS.md (about 23 minutes)
	$(BIN)/python -m bench

bench-quick: $(INSTALLED) ## the benchmarks on small numbers (in CI)
	$(BIN)/python -m bench --quick

clean: ## remove the virtual environments and .run/
	rm -rf $(VENV) .venv-checkov .run .pytest_cache

# --- kind cluster (see docs/kind.md) ---
# Needs docker, kind, kubectl and istioctl; scripts/kind.sh says how to get any that is missing.
.PHONY: kind-up kind-scenario kind-reset kind-down kind-smoke kind-fault kind-fault-clear kind-load kind-load-stop

kind-up: ## kind cluster, Istio, image, manifests, addons, dashboard
	scripts/kind.sh up

kind-scenario: $(RUN_INSTALLED) ## apply a scenario (policy and faults) on kind: NAME= (NAME=base restores)
	@test -n "$(NAME)" || { echo "usage: make kind-scenario NAME=<one of: $$($(BIN)/python -m localmesh scenarios | cut -d' ' -f1 | tr '\n' ' ')>"; exit 2; }
	$(BIN)/python -m localmesh scenario $(NAME) --kind

kind-reset: ## the base policy on kind, and no fault anywhere
	scripts/kind.sh reset

# The same levers as `make fault`, on one pod of the cluster (kubectl exec, no rollout);
# POD is a pod's name (kubectl -n meshcalc get pods) or a Deployment's (its first pod).
kind-fault: ## break one pod at run time on kind: POD= ERRORS= ...
	@test -n "$(POD)" || { echo "usage: make kind-fault POD=calculator-v1 ERRORS=0.5 [STATUS=] [DELAY=] [DELAY_SHARE=] [HANG=1]"; exit 2; }
	scripts/kind.sh fault $(POD) $(FAULT_OPTIONS)

kind-fault-clear: ## heal every calculator pod on kind (or POD=)
	scripts/kind.sh fault-clear $(POD)

kind-load: ## steady traffic on kind (fortio, 10 requests/s through the ingress) until kind-load-stop
	scripts/kind.sh load-start

kind-load-stop: ## stop the load generator on kind
	scripts/kind.sh load-stop

kind-down: ## delete the kind cluster
	scripts/kind.sh down

kind-smoke: ## check every scenario and the observability on kind
	scripts/kind-smoke.sh
