"""AuthorizationPolicy to Envoy's RBAC HTTP filter. Pure.

istiod puts the filter on a workload's inbound listener, behind mTLS: the peer's
certificate carries its SPIFFE identity (``spiffe://cluster.local/ns/NS/sa/SA``),
which ``source.principals`` match. The shapes follow istiod's builder
(``pilot/pkg/security/authz/builder``): one RBAC policy per rule, named
``ns[NS]-policy[NAME]-rule[I]``; in it, one permission per ``to`` and one
principal per ``from``, each the AND of its fields, each field the OR of its
values. An ALLOW policy with no rule allows nothing. On the ingress gateway it
goes first in the listener's filter chain, and rules without ``from`` match any
client.

``make up`` enforces the ingress gateway's policies in its ingress Envoy, and runs
no inbound sidecars (RELIABILITY.md says why); the tests run the inbound sidecar
(``bootstrap.inbound_bootstrap``) in a real Envoy in front of a real calculator,
with certificates for the gateway's and another ServiceAccount.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from localmesh.translate.errors import Fields
from localmesh.translate.resources import Resource

RBAC_FILTER = "envoy.filters.http.rbac"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
AUTHORIZATION_POLICY = "AuthorizationPolicy"
ANY_PERMISSION = {"and_rules": {"rules": [{"any": True}]}}
ANY_PRINCIPAL = {"and_ids": {"ids": [{"any": True}]}}


def spiffe_id(namespace: str, service_account: str, trust_domain: str = "cluster.local") -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def policies_for(resources: Iterable[Resource], namespace: str, labels: Mapping[str, str]) -> list[Resource]:
    """The AuthorizationPolicies of ``namespace`` whose selector matches a workload's pod labels.

    Mesh-wide policies (in Istio's root namespace, istio-system) are not looked up:
    the manifests have none, and the inbound sidecar is built per workload.
    """
    selected = []
    for resource in resources:
        if resource.kind != AUTHORIZATION_POLICY or resource.namespace != namespace:
            continue
        wanted = (resource.spec.get("selector") or {}).get("matchLabels") or {}
        if all(labels.get(key) == value for key, value in wanted.items()):
            selected.append(resource)
    return sorted(selected, key=lambda r: r.name)


def _string_match(value: str, prefix: str = "") -> dict:
    """Istio's wildcard strings: "*" any non-empty value, "a*" a prefix, "*a" a suffix, else exact."""
    if value == "*":
        return {"safe_regex": {"regex": ".+"}}
    if value.endswith("*"):
        return {"prefix": prefix + value[:-1]}
    if value.startswith("*"):
        return {"suffix": value[1:]}
    return {"exact": prefix + value}


def _any_of(matchers: list[dict], key: str) -> dict:
    return {f"or_{key}": {key: matchers}}


def _permission(operation: Fields) -> dict:
    rules = []
    methods = operation.strings("methods")
    if methods:
        rules.append(
            _any_of([{"header": {"name": ":method", "string_match": {"exact": m}}} for m in methods], "rules")
        )
    paths = operation.strings("paths")
    if paths:
        rules.append(_any_of([{"url_path": {"path": _string_match(p)}} for p in paths], "rules"))
    operation.finish()
    return {"and_rules": {"rules": rules or [{"any": True}]}}


def _authenticated(principal_name: dict) -> dict:
    return {"authenticated": {"principal_name": principal_name}}


def _principal(source: Fields) -> dict:
    ids = []
    principals = source.strings("principals")
    if principals:
        ids.append(_any_of([_authenticated(_string_match(p, "spiffe://")) for p in principals], "ids"))
    namespaces = source.strings("namespaces")
    if namespaces:
        in_namespace = [_authenticated({"safe_regex": {"regex": f".*/ns/{n}/.*"}}) for n in namespaces]
        ids.append(_any_of(in_namespace, "ids"))
    source.finish()
    return {"and_ids": {"ids": ids or [{"any": True}]}}


def rbac_filter(policies: Iterable[Resource]) -> dict | None:
    """The RBAC filter of a workload's inbound listener; None when no policy selects it (all allowed)."""
    rbac_policies: dict[str, dict] = {}
    selected = False
    for resource in policies:
        spec = Fields(resource.spec, "spec", resource.origin)
        spec.raw("selector")  # read by policies_for
        action = spec.text("action", "ALLOW")
        if action != "ALLOW":
            raise resource.origin.unsupported("spec.action", action, "only ALLOW policies are translated")
        selected = True
        for index, rule in enumerate(spec.mappings("rules")):
            permissions = []
            for target in rule.mappings("to"):
                operation = target.mapping("operation")
                permissions.append(_permission(operation) if operation else ANY_PERMISSION)
                target.finish()
            principals = []
            for origin in rule.mappings("from"):
                source = origin.mapping("source")
                principals.append(_principal(source) if source else ANY_PRINCIPAL)
                origin.finish()
            rule.finish()
            name = f"ns[{resource.namespace}]-policy[{resource.name}]-rule[{index}]"
            rbac_policies[name] = {
                "permissions": permissions or [ANY_PERMISSION],
                "principals": principals or [ANY_PRINCIPAL],
            }
        spec.finish()
    if not selected:
        return None
    rules = {"action": "ALLOW", "policies": rbac_policies}
    return {"name": RBAC_FILTER, "typed_config": {"@type": RBAC_TYPE, "rules": rules}}
