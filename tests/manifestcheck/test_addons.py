"""Our dashboard reaches the addons' Grafana: mounted where its provider reads, with the data sources it names."""

from __future__ import annotations

from manifestcheck.addons import DASHBOARDS_CONFIGMAP, check_grafana_wiring
from tests.manifestcheck.conftest import REPO_ROOT

PATCH = "k8s/addons/grafana-deployment-patch.yaml"
PROVISIONING = "k8s/addons/grafana-provisioning.yaml"


def wiring(repo_copy):
    repository = repo_copy.load()
    return check_grafana_wiring(repository.addons, repository.patches, repository.dashboards)


def mounts(document):
    return document["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]


def test_the_provider_reads_where_the_dashboards_are_mounted(repo_copy):
    repo_copy.edit(
        PATCH, lambda d: mounts(d)[0].update(mountPath="/var/lib/grafana/dashboards/meshcalc-json")
    )
    (finding,) = wiring(repo_copy)
    assert (finding.check, finding.file, finding.resource) == (
        "grafana-wiring",
        PROVISIONING,
        "ConfigMap istio-system/meshcalc-grafana-provisioning",
    )


def test_the_provider_file_is_where_grafana_provisions_dashboards(repo_copy):
    repo_copy.edit(PATCH, lambda d: mounts(d)[1].update(mountPath="/etc/grafana/meshcalc.yaml"))
    (finding,) = wiring(repo_copy)
    assert finding.field.endswith("volumeMounts[1].mountPath")


def test_a_sub_path_is_a_key_of_the_config_map(repo_copy):
    repo_copy.edit(PATCH, lambda d: mounts(d)[2].update(subPath="datasource.yaml"))
    findings = wiring(repo_copy)
    assert any(f.field.endswith("volumeMounts[2].subPath") for f in findings)
    # and so the dashboard's data source is not provisioned either
    assert any(f.file == "dashboards/meshcalc.json" for f in findings)


def test_the_dashboards_config_map_is_mounted(repo_copy):
    repo_copy.edit(
        PATCH, lambda d: d["spec"]["template"]["spec"]["volumes"][0]["configMap"].update(name="dashboards")
    )
    findings = wiring(repo_copy)
    assert any("is not in k8s/addons" in f.message for f in findings)


def test_the_dashboard_uses_a_provisioned_data_source(repo_copy):
    def change(document):
        document["templating"]["list"][0]["current"]["value"] = "prometheus"

    repo_copy.edit_json("dashboards/meshcalc.json", change)
    findings = wiring(repo_copy)
    assert findings and {f.file for f in findings} == {"dashboards/meshcalc.json"}


def test_exemplars_link_to_a_provisioned_trace_source(repo_copy):
    def change(document):
        text = document["data"]["datasources.yaml"].replace(
            "datasourceUid: meshcalc-jaeger", "datasourceUid: jaeger"
        )
        document["data"]["datasources.yaml"] = text

    repo_copy.edit(PROVISIONING, change)
    (finding,) = wiring(repo_copy)
    assert "no provisioned data source jaeger" in finding.message


def test_the_script_makes_the_config_map_the_patch_mounts():
    script = (REPO_ROOT / "scripts/kind.sh").read_text()
    assert f'DASHBOARDS_CONFIGMAP="{DASHBOARDS_CONFIGMAP}"' in script
