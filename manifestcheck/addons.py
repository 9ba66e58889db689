"""Our dashboard in the Grafana of Istio's addons: provisioned where Grafana looks, with the data sources it names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from manifestcheck.dashboard import panels, queries, variables
from manifestcheck.loading import Dashboard, Patch
from manifestcheck.model import Finding, Manifest, mapping, of_kind, sequence

# scripts/kind.sh makes this ConfigMap from dashboards/*.json.
DASHBOARDS_CONFIGMAP = "meshcalc-grafana-dashboards"
GRAFANA_CONTAINER = "grafana"
PROVISIONING = "/etc/grafana/provisioning"
# The label of servicekit.telemetry's exemplars.
EXEMPLAR_LABEL = "trace_id"


def grafana_patch(patches: Sequence[Patch]) -> tuple[Patch, Mapping[str, Any]] | None:
    for patch in patches:
        pod = mapping(mapping(mapping(patch.body.get("spec")).get("template")).get("spec"))
        for container in sequence(pod.get("containers")):
            if mapping(container).get("name") == GRAFANA_CONTAINER:
                return patch, pod
    return None


def check_grafana_wiring(
    addons: Sequence[Manifest],
    patches: Sequence[Patch],
    dashboards: Sequence[Dashboard],
    dashboards_configmap: str = DASHBOARDS_CONFIGMAP,
) -> list[Finding]:
    found = grafana_patch(patches)
    if found is None:
        return [
            Finding(
                "grafana-wiring",
                "k8s/addons",
                "Deployment istio-system/grafana",
                "-",
                "no patch mounts our dashboard into Grafana",
            )
        ]
    patch, pod = found
    findings = []

    def report(
        field: str,
        message: str,
        source: str = patch.source,
        resource: str = "Deployment istio-system/grafana",
    ) -> None:
        findings.append(Finding("grafana-wiring", source, resource, field, message))

    configmaps = {m.name: m for m in of_kind(addons, "ConfigMap")}
    volumes = {
        str(mapping(v).get("name")): str(mapping(mapping(v).get("configMap")).get("name"))
        for v in sequence(pod.get("volumes"))
    }
    container = next(
        mapping(c) for c in sequence(pod.get("containers")) if mapping(c).get("name") == GRAFANA_CONTAINER
    )
    dashboard_paths: set[str] = set()
    providers: list[tuple[Manifest, str]] = []
    datasources: dict[str, Mapping[str, Any]] = {}
    for index, mount in enumerate(sequence(container.get("volumeMounts"))):
        mount = mapping(mount)
        field = f"spec.template.spec.containers[{GRAFANA_CONTAINER}].volumeMounts[{index}]"
        configmap_name = volumes.get(str(mount.get("name")))
        mount_path = str(mount.get("mountPath", ""))
        if configmap_name is None:
            report(f"{field}.name", f"no volume {mount.get('name')} in the patch")
            continue
        if configmap_name == dashboards_configmap:
            dashboard_paths.add(mount_path.rstrip("/"))
            continue
        configmap = configmaps.get(configmap_name)
        if configmap is None:
            report(f"{field}.name", f"ConfigMap {configmap_name} is not in k8s/addons")
            continue
        key = mount.get("subPath")
        content = mapping(configmap.body.get("data")).get(str(key))
        if content is None:
            report(f"{field}.subPath", f"{key!r} is not a key of ConfigMap {configmap_name}")
            continue
        parsed = mapping(yaml.safe_load(content))
        if "providers" in parsed:
            if not mount_path.startswith(f"{PROVISIONING}/dashboards/"):
                report(f"{field}.mountPath", f"a dashboard provider must be under {PROVISIONING}/dashboards/")
            providers += [
                (configmap, str(mapping(mapping(p).get("options")).get("path", "")))
                for p in sequence(parsed["providers"])
            ]
        if "datasources" in parsed:
            if not mount_path.startswith(f"{PROVISIONING}/datasources/"):
                report(f"{field}.mountPath", f"a data source must be under {PROVISIONING}/datasources/")
            datasources.update(
                {str(mapping(d).get("uid")): mapping(d) for d in sequence(parsed["datasources"])}
            )
    if not dashboard_paths:
        report(
            "spec.template.spec.volumes", f"ConfigMap {dashboards_configmap} (the dashboards) is not mounted"
        )
    if not providers:
        report(
            "spec.template.spec.containers",
            "no dashboard provider is mounted: Grafana would not load our dashboard",
        )
    for configmap, path in providers:
        if path.rstrip("/") not in dashboard_paths:
            report(
                "data",
                f"the provider reads {path}, where no dashboard is mounted ({', '.join(sorted(dashboard_paths))})",
                configmap.source,
                configmap.ref,
            )
    for source in datasources.values():
        for index, destination in enumerate(
            sequence(mapping(source.get("jsonData")).get("exemplarTraceIdDestinations"))
        ):
            destination = mapping(destination)
            if destination.get("name") != EXEMPLAR_LABEL:
                report(
                    f"datasources.{source.get('uid')}.exemplarTraceIdDestinations[{index}].name",
                    f"the apps' exemplars carry {EXEMPLAR_LABEL!r}",
                )
            if destination.get("datasourceUid") and destination["datasourceUid"] not in datasources:
                report(
                    f"datasources.{source.get('uid')}.exemplarTraceIdDestinations[{index}].datasourceUid",
                    f"no provisioned data source {destination['datasourceUid']}",
                )
    for dashboard in dashboards:
        values = variables(dashboard.body)
        for path, panel in panels(dashboard.body):
            uids = [mapping(panel.get("datasource")).get("uid")] + [
                mapping(mapping(t).get("datasource")).get("uid") for t in sequence(panel.get("targets"))
            ]
            for uid in uids:
                if uid is None:
                    continue
                resolved = values.get(str(uid)[2:-1], uid) if str(uid).startswith("${") else uid
                if resolved not in datasources:
                    findings.append(
                        Finding(
                            "grafana-wiring",
                            dashboard.source,
                            f"panel {panel.get('id')} {panel.get('title')!r}",
                            f"{path}.datasource.uid",
                            f"{uid!r} is no provisioned data source ({', '.join(sorted(datasources))})",
                        )
                    )
                    break
        if not queries(dashboard.body):
            findings.append(Finding("grafana-wiring", dashboard.source, "dashboard", "panels", "no query"))
    return findings
