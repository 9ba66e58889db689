"""Every check, run on a loaded repository: the list the CLI and the tests share."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from manifestcheck import references, resilience, workloads
from manifestcheck.addons import check_grafana_wiring
from manifestcheck.components import check_components
from manifestcheck.dashboard import check_dashboard, check_envoy_stats_exposed
from manifestcheck.install import check_kind_ingress, check_kind_node_image, check_tracing, ingress_labels
from manifestcheck.istio_schema import check_istio_schema
from manifestcheck.kubernetes_schema import check_kubernetes_schema
from manifestcheck.loading import Repository
from manifestcheck.model import Finding, Manifest
from manifestcheck.scenarios import check_scenario_shape, check_scenarios_against_base
from manifestcheck.tools import (
    ToolMissing,
    run_actionlint,
    run_promtool,
    run_shellcheck,
    shell_scripts,
    workflows,
)

MeshCheck = Callable[[Sequence[Manifest]], list[Finding]]


def mesh_checks(repository: Repository) -> list[MeshCheck]:
    """Checks of the workloads and mesh policy applied together: run on the base and on each scenario."""
    ingress = ingress_labels(repository.install)
    return [
        check_istio_schema,
        references.check_destination_hosts,
        references.check_subsets,
        references.check_route_weights,
        functools.partial(references.check_gateway_bindings, ingress_labels=ingress),
        functools.partial(references.check_selectors, ingress_labels=ingress),
        references.check_service_ports,
        references.check_service_accounts,
        functools.partial(references.check_authorization, ingress_labels=ingress),
        references.check_mesh_labels,
        workloads.check_no_proxy_uid,
        workloads.check_security_context,
        workloads.check_probes,
        workloads.check_resources,
        workloads.check_writable_paths,
        workloads.check_termination_grace,
        workloads.check_scrape_annotations,
        workloads.check_otlp_endpoint,
        workloads.check_availability,
        resilience.check_timeouts,
        resilience.check_retries,
        resilience.check_connection_pool,
        resilience.check_outlier_detection,
    ]


def offline_checks(repository: Repository) -> list[Finding]:
    """Every check that needs nothing but Python: schemas, references, policy, wiring."""
    mesh = list(repository.mesh)
    findings = list(repository.problems)
    components = [m for manifests in repository.components.values() for m in manifests]
    findings += check_kubernetes_schema(
        [*repository.kubernetes, *repository.addons, *repository.install, *components]
    )
    checks = mesh_checks(repository)
    for check in checks:
        findings += check(mesh)
    findings += check_istio_schema(
        [*repository.install, *(m for s in repository.scenarios.values() for m in s)]
    )
    sources = {name: repository.scenario_source(name) for name in repository.scenarios}
    findings += check_scenario_shape(repository.istio, repository.scenarios, sources)
    findings += check_scenarios_against_base(mesh, repository.scenarios, checks)
    findings += check_kind_ingress(repository.kind_cluster, repository.install, mesh)
    findings += check_kind_node_image(repository.kind_cluster, repository.install)
    findings += check_tracing(repository.install, mesh)
    findings += check_components(repository.components, repository.install)
    findings += check_grafana_wiring(repository.addons, repository.patches, repository.dashboards)
    for dashboard in repository.dashboards:
        findings += check_dashboard(dashboard)
        findings += check_envoy_stats_exposed(dashboard, mesh)
    return findings


@dataclass(frozen=True)
class ToolReport:
    findings: list[Finding]
    skipped: list[str]


def tool_checks(repository: Repository) -> ToolReport:
    """promtool, shellcheck and actionlint; a missing tool is skipped and said so."""
    findings: list[Finding] = []
    skipped: list[str] = []
    runs: list[Callable[[], list[Finding]]] = [
        *(functools.partial(run_promtool, d) for d in repository.dashboards),
        functools.partial(run_shellcheck, repository.root, shell_scripts(repository.root)),
        functools.partial(run_actionlint, repository.root, workflows(repository.root)),
    ]
    for run in runs:
        try:
            findings += run()
        except ToolMissing as missing:
            skipped.append(str(missing))
    return ToolReport(findings, skipped)
