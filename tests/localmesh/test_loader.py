"""Reading k8s/ and istio/ from disk, as kustomize would."""

import subprocess
from pathlib import Path

import pytest
import yaml

from localmesh.loader import Layout, load_kustomization, load_mesh
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
    with_scenario = {r.key: r for r in load_mesh(layout, "fault-abort")}
    assert base.keys() == with_scenario.keys()
    changed = [k for k in base if base[k].source != with_scenario[k].source]
    assert changed == [("VirtualService", "meshcalc", "calculator")]
    assert with_scenario[changed[0]].source == "istio/scenarios/fault-abort.yaml"


def test_an_unknown_scenario_lists_the_known_ones():
    with pytest.raises(TranslationError, match="no scenario 'nope'.*fault-abort"):
        load_mesh(Layout(ROOT), "nope")


def test_scenarios_joined_with_a_plus_apply_in_turn():
    layout = Layout(ROOT)
    merged = {r.key: r for r in load_mesh(layout, "outlier-detection-lenient+retries-off")}
    sources = {r.source for r in merged.values()}
    assert {"istio/scenarios/outlier-detection-lenient.yaml", "istio/scenarios/retries-off.yaml"} <= sources
    assert len(merged) == len(load_mesh(layout))
    with pytest.raises(TranslationError, match="no scenario 'nope'"):
        load_mesh(layout, "retries-off+nope")
