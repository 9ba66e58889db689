"""The ingress gateway's EnvoyFilter: its two patches applied as istiod applies them, every other
shape refused with the file, resource and field named, and its numbers the services' own."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from calculator.config import CalculatorSettings
from gateway.config import GatewaySettings
from localmesh.loader import Layout, load_kustomization, load_mesh
from localmesh.translate import TranslationError, ingress_bootstrap, local_endpoints, read_manifests
from localmesh.translate.envoy_filters import BUFFER_FILTER, parse_envoy_filter
from localmesh.translate.resources import Resource
from servicekit import errors, gunicorn_worker

REPO = Path(__file__).resolve().parents[3]
UNSUPPORTED = "is not supported by the local mesh"


def repository_filter() -> Resource:
    (resource,) = [r for r in load_kustomization(REPO / "istio" / "ingress", REPO) if r.kind == "EnvoyFilter"]
    return resource


def changed(change) -> Resource:
    resource = repository_filter()
    spec = copy.deepcopy(dict(resource.spec))
    change(spec)
    return Resource(resource.api_version, resource.kind, resource.namespace, resource.name, spec,
                    resource.source, resource.metadata)


def ingress_hcm() -> dict:
    manifests = read_manifests(load_mesh(Layout(REPO)))
    ports = {"meshcalc/calculator-v1": [1, 2], "meshcalc/calculator-v2": [3], "meshcalc/gateway": [4, 5]}
    bootstrap = ingress_bootstrap(manifests, local_endpoints(manifests, ports), listen_port=8080, admin_port=8081)
    (listener,) = bootstrap["static_resources"]["listeners"]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def test_the_ingress_gets_the_edge_patches_and_its_authorization_first():
    hcm = ingress_hcm()
    names = [f["name"] for f in hcm["http_filters"]]
    # istiod's order: RBAC first, then the chain, the buffer inserted right before the router.
    assert names[0] == "envoy.filters.http.rbac"
    assert names[-2:] == [BUFFER_FILTER, "envoy.filters.http.router"]
    assert hcm["request_timeout"] == hcm["request_headers_timeout"] == "10s"
    assert parse_envoy_filter(repository_filter()).request_timeout_seconds == 10.0
    assert hcm["local_reply_config"]["body_format"] == {"json_format": {"error": "%LOCAL_REPLY_BODY%"}}
    policies = hcm["http_filters"][0]["typed_config"]["rules"]["policies"]
    assert list(policies) == ["ns[istio-system]-policy[ingressgateway]-rule[0]"]


def test_the_buffer_limit_is_the_services_body_limit():
    limit = parse_envoy_filter(repository_filter()).max_request_bytes
    assert limit == CalculatorSettings.max_request_bytes == GatewaySettings.max_request_bytes


def test_the_ingress_speaks_like_the_services_where_they_answer_the_same_status():
    replies = parse_envoy_filter(repository_filter()).local_replies
    services = {**gunicorn_worker.MESSAGES, **errors.MESSAGES}
    shared = {status for status in replies if status in services and status != 408}
    # 408: the services' is about a body that stopped; the ingress's covers headers too.
    assert shared == {400, 403, 404, 413, 431}
    for status in shared:
        assert replies[status] == services[status], status


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda s: s["workloadSelector"].update(labels={"app": "gateway"}), "spec.workloadSelector.labels"),
        (lambda s: s["configPatches"][0].update(applyTo="CLUSTER"), "spec.configPatches[0]"),
        (lambda s: s["configPatches"][0]["match"].update(context="SIDECAR_INBOUND"), "spec.configPatches[0].match.context"),
        (lambda s: s["configPatches"][0]["match"].update(proxy={"proxyVersion": "^1\\.30.*"}), "spec.configPatches[0].match.proxy"),
        (lambda s: s["configPatches"][0]["patch"]["value"]["typed_config"].update(stream_idle_timeout="1s"),
         "spec.configPatches[0].patch.value.typed_config.stream_idle_timeout"),
        (lambda s: s["configPatches"][1]["patch"]["value"].update(name="envoy.filters.http.lua"),
         "spec.configPatches[1].patch.value.name"),
        (lambda s: s["configPatches"][1]["patch"]["value"]["typed_config"].update(max_request_time="5s"),
         "spec.configPatches[1].patch.value.typed_config.max_request_time"),
        (lambda s: s["configPatches"][1]["match"]["listener"]["filterChain"]["filter"]["subFilter"].update(
            name="envoy.filters.http.cors"), "spec.configPatches[1].match.listener.filterChain.filter.subFilter.name"),
        (lambda s: s["configPatches"][1]["patch"].update(operation="INSERT_FIRST"), "spec.configPatches[1]"),
    ],
    ids=["sidecar", "cluster", "context", "proxy", "hcm-field", "lua", "buffer-field", "anchor", "operation"],
)
def test_any_other_envoyfilter_is_refused_naming_the_field(change, field):
    with pytest.raises(TranslationError) as refused:
        parse_envoy_filter(changed(change))
    message = str(refused.value)
    assert message.startswith("istio/ingress/ingressgateway-envoyfilter.yaml: EnvoyFilter istio-system/ingressgateway: ")
    assert f": {field}" in message and UNSUPPORTED in message, message


def test_an_envoyfilter_outside_the_ingress_namespace_is_refused():
    resource = repository_filter()
    moved = Resource(resource.api_version, resource.kind, "meshcalc", resource.name, resource.spec,
                     resource.source, resource.metadata)
    with pytest.raises(TranslationError, match="spec.workloadSelector.labels.*only EnvoyFilters of the ingress"):
        parse_envoy_filter(moved)
