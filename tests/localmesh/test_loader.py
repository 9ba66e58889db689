"""Reading k8s/ and istio/ from disk, as kustomize would."""

import subprocess
from pathlib import Path

import pytest
import yaml

from localmesh.loader import Layout, load_kustomization, load_mesh, read_kustomization
from localmesh.translate import TranslationError
from tests.tools import kubectl

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("directory", ["k8s/base", "istio", "istio/ingress"])
def test_loader_agrees_with_kubectl_kustomize(directory):
    rendered = subprocess.run(
        [kubectl(), "kustomize", str(ROOT / directory)], capture_output=True, text=True, check=True
    ).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    loaded = {(r.kind, r.name): r for r in load_kustomization(ROOT / directory, ROOT)}
    assert sorted(loaded) == sorted((d["kind"], d["metadata"]["name"]) for d in documents)
    for document in documents:
        resource = loaded[(document["kind"], document["metadata"]["name"])]
        if document["kind"] != "Namespace":
            assert resource.namespace == document["metadata"]["namespace"]
        assert resource.spec == (document.get("spec") or {})


def test_sources_are_relative_to_the_checkout():
    resources = load_kustomization(ROOT / "k8s/base", ROOT)
    assert all(r.source.startswith("k8s/base/") for r in resources)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_kustomize_field_the_loader_does_not_implement_is_refused(tmp_path):
    write(tmp_path / "kustomization.yaml", "resources: []\ncommonLabels: {team: x}\n")
    with pytest.raises(TranslationError, match="commonLabels: the local mesh reads only resources and namespace"):
        load_kustomization(tmp_path, tmp_path)


def test_a_missing_resource_file_is_named(tmp_path):
    write(tmp_path / "kustomization.yaml", "resources: [nada.yaml]\n")
    with pytest.raises(TranslationError, match="nada.yaml does not exist"):
        load_kustomization(tmp_path, tmp_path)


def test_nested_kustomizations_and_the_namespace_override(tmp_path):
    write(tmp_path / "kustomization.yaml", "namespace: uno\nresources: [sub]\n")
    write(tmp_path / "sub/kustomization.yaml", "resources: [svc.yaml]\n")
    write(tmp_path / "sub/svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: otro}\nspec: {}\n")
    [service] = load_kustomization(tmp_path, tmp_path)
    assert (service.namespace, service.source) == ("uno", "sub/svc.yaml")


def test_invalid_yaml_names_the_file(tmp_path):
    write(tmp_path / "kustomization.yaml", "resources: [bad.yaml]\n")
    write(tmp_path / "bad.yaml", "kind: [unclosed\n")
    with pytest.raises(TranslationError, match="bad.yaml: not valid YAML"):
        load_kustomization(tmp_path, tmp_path)


def test_a_scenario_replaces_the_base_resource_of_the_same_name():
    layout = Layout(ROOT)
    base = {r.key: r for r in load_mesh(layout)}
    with_scenario = {r.key: r for r in load_mesh(layout, ["virtual-service-calculator-fault-abort"])}
    assert base.keys() == with_scenario.keys()
    changed = [k for k in base if base[k].source != with_scenario[k].source]
    assert changed == [("VirtualService", "meshcalc", "calculator")]
    assert with_scenario[changed[0]].source == "istio/scenarios/virtual-service-calculator-fault-abort.yaml"


def test_an_unknown_policy_file_lists_the_known_ones():
    with pytest.raises(TranslationError, match="no policy file 'nope'.*virtual-service-calculator-fault-abort"):
        load_mesh(Layout(ROOT), ["nope"])
    with pytest.raises(TypeError, match="a sequence of file names"):
        load_mesh(Layout(ROOT), "virtual-service-calculator-fault-abort")


def test_policy_files_apply_in_turn():
    layout = Layout(ROOT)
    merged = {r.key: r for r in load_mesh(layout, ["destination-rule-calculator-lenient-ejection", "virtual-service-calculator-no-retries"])}
    sources = {r.source for r in merged.values()}
    assert {"istio/scenarios/destination-rule-calculator-lenient-ejection.yaml", "istio/scenarios/virtual-service-calculator-no-retries.yaml"} <= sources
    assert len(merged) == len(load_mesh(layout))
    with pytest.raises(TranslationError, match="no policy file 'nope'"):
        load_mesh(layout, ["virtual-service-calculator-no-retries", "nope"])


def test_one_reader_of_a_kustomization_file_for_the_mesh_and_the_checks(tmp_path):
    """read_kustomization gives what is written (manifestcheck reads Components and reports fields with it)."""
    write(tmp_path / "c/kustomization.yaml",
          "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nnamespace: uno\n"
          "resources: [a.yaml]\nlabels: [{pairs: {team: x}}]\n")
    kustomization = read_kustomization(tmp_path / "c", tmp_path)
    assert (kustomization.source, kustomization.kind, kustomization.namespace) == ("c/kustomization.yaml", "Component", "uno")
    assert (kustomization.resources, kustomization.unsupported) == (("a.yaml",), ("labels",))


@pytest.mark.parametrize(
    "text, message",
    [
        ("resources: a.yaml\n", "resources: must be a list of paths"),
        ("resources: [{path: a.yaml}]\n", "resources: must be a list of paths"),
        ("- a.yaml\n", "a kustomization is one mapping"),
    ],
)
def test_a_kustomization_that_is_not_one_is_refused(tmp_path, text, message):
    write(tmp_path / "kustomization.yaml", text)
    with pytest.raises(TranslationError, match=f"kustomization.yaml: {message}"):
        read_kustomization(tmp_path, tmp_path)
    with pytest.raises(TranslationError, match=message):
        load_kustomization(tmp_path, tmp_path)


def test_each_deployment_carries_its_autoscalers_minimum_and_the_spec_stays_as_written():
    resources = load_kustomization(ROOT / "k8s/base", ROOT)
    deployments = {r.name: r for r in resources if r.kind == "Deployment"}
    assert {name: r.autoscaler_min_replicas for name, r in deployments.items()} == {
        "calculator-v1": 2, "calculator-v2": 1, "gateway": 2,
    }
    assert not any("replicas" in r.spec for r in deployments.values())
