"""AuthorizationPolicy -> Envoy RBAC, in istiod's shapes; every inbound bootstrap passes Envoy's validate mode."""

from __future__ import annotations

import json
import subprocess

import pytest

from localmesh.envoy import envoy_binary
from localmesh.loader import Layout, load_mesh
from localmesh.translate import TranslationError, read_manifests
from localmesh.translate.authorization import policies_for, rbac_filter, spiffe_id
from localmesh.translate.bootstrap import inbound_bootstrap
from localmesh.translate.resources import Resource
from tests.localmesh.certificates import MeshCA
from tests.support import ROOT
from tests.tools import needs_envoy

GATEWAY_ID = "spiffe://cluster.local/ns/meshcalc/sa/gateway"


@pytest.fixture(scope="module")
def resources():
    return load_mesh(Layout(ROOT))


def labels_of(resources, deployment: str) -> dict[str, str]:
    return read_manifests(resources).deployments[f"meshcalc/{deployment}"].labels


def policy(spec: dict, name: str = "p") -> Resource:
    document = {
        "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": {"name": name}, "spec": spec
    }
    return Resource.from_document(document, "test.yaml", "meshcalc")


def test_the_calculator_policy_selects_the_calculators_only(resources):
    for deployment in ("calculator-v1", "calculator-v2"):
        assert [p.name for p in policies_for(resources, "meshcalc", labels_of(resources, deployment))] == ["calculator"]
    assert [p.name for p in policies_for(resources, "meshcalc", labels_of(resources, "gateway"))] == ["gateway"]
    assert policies_for(resources, "other", labels_of(resources, "gateway")) == []


def test_the_calculator_policy_becomes_istiods_rbac_rule(resources):
    rbac = rbac_filter(policies_for(resources, "meshcalc", labels_of(resources, "calculator-v1")))
    rules = rbac["typed_config"]["rules"]
    assert rules["action"] == "ALLOW" and list(rules["policies"]) == ["ns[meshcalc]-policy[calculator]-rule[0]"]
    rule = rules["policies"]["ns[meshcalc]-policy[calculator]-rule[0]"]
    assert rule["principals"] == [
        {"and_ids": {"ids": [{"or_ids": {"ids": [{"authenticated": {"principal_name": {"exact": GATEWAY_ID}}}]}}]}}
    ]
    assert rule["permissions"] == [
        {
            "and_rules": {
                "rules": [
                    {"or_rules": {"rules": [{"header": {"name": ":method", "string_match": {"exact": "POST"}}}]}},
                    {"or_rules": {"rules": [{"url_path": {"path": {"exact": "/calcular"}}}]}},
                ]
            }
        }
    ]


def test_wildcard_paths_and_principals_follow_istio():
    rbac = rbac_filter([policy({"rules": [{
        "from": [{"source": {"principals": ["*"], "namespaces": ["meshcalc"]}}],
        "to": [{"operation": {"paths": ["/static/*", "*.css", "*"]}}],
    }]})])
    rule = rbac["typed_config"]["rules"]["policies"]["ns[meshcalc]-policy[p]-rule[0]"]
    paths = [r["url_path"]["path"] for r in rule["permissions"][0]["and_rules"]["rules"][0]["or_rules"]["rules"]]
    assert paths == [{"prefix": "/static/"}, {"suffix": ".css"}, {"safe_regex": {"regex": ".+"}}]
    principal, namespace = rule["principals"][0]["and_ids"]["ids"]
    assert principal["or_ids"]["ids"][0]["authenticated"]["principal_name"] == {"safe_regex": {"regex": ".+"}}
    in_namespace = namespace["or_ids"]["ids"][0]["authenticated"]["principal_name"]
    assert in_namespace == {"safe_regex": {"regex": ".*/ns/meshcalc/.*"}}


def test_no_policy_allows_everything_and_an_allow_policy_without_rules_allows_nothing():
    assert rbac_filter([]) is None
    assert rbac_filter([policy({})])["typed_config"]["rules"] == {"action": "ALLOW", "policies": {}}
    empty_rule = rbac_filter([policy({"rules": [{}]})])["typed_config"]["rules"]["policies"]
    assert empty_rule == {"ns[meshcalc]-policy[p]-rule[0]": {
        "permissions": [{"and_rules": {"rules": [{"any": True}]}}],
        "principals": [{"and_ids": {"ids": [{"any": True}]}}],
    }}


@pytest.mark.parametrize("spec, named", [
    ({"action": "DENY", "rules": [{}]}, "spec.action"),
    ({"rules": [{"when": [{"key": "request.headers[x]", "values": ["1"]}]}]}, "spec.rules[0].when"),
    ({"rules": [{"to": [{"operation": {"ports": ["8080"]}}]}]}, "spec.rules[0].to[0].operation.ports"),
    ({"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]}, "spec.rules[0].from[0].source.ipBlocks"),
])
def test_fields_not_translated_are_refused_by_name(spec, named):
    with pytest.raises(TranslationError, match=named.replace("[", r"\[").replace("]", r"\]")):
        rbac_filter([policy(spec)])


def test_spiffe_id_is_istios():
    assert spiffe_id("meshcalc", "gateway") == GATEWAY_ID


@needs_envoy
def test_the_inbound_bootstrap_passes_envoys_validate_mode(resources, tmp_path):
    certificate = MeshCA(tmp_path).issue("calculator", spiffe_id("meshcalc", "calculator"))
    bootstrap = inbound_bootstrap(
        policies_for(resources, "meshcalc", labels_of(resources, "calculator-v1")),
        workload="calculator-v1.meshcalc", app_port=8080, listen_port=15006, admin_port=15000, certificate=certificate,
    )
    path = tmp_path / "inbound.json"
    path.write_text(json.dumps(bootstrap))
    command = [envoy_binary(), "--mode", "validate", "-c", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_the_inbound_bootstrap_needs_its_certificate(resources):
    with pytest.raises(TranslationError, match="needs cert, key and ca"):
        inbound_bootstrap([], workload="w", app_port=1, listen_port=2, admin_port=3, certificate={"cert": "c"})
