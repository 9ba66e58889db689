"""The optional kustomize components (k8s/components/): hardened like the services' pods, their
images pinned by digest, and a load generator aimed at the ingress gateway's Service.

A component's pods serve nothing (a load generator has no endpoint and no Service), so the
checks of serving workloads (probes, scrape annotations, availability, gunicorn's grace) do not
apply to them; the hardening does, the same as for k8s/base.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from manifestcheck import workloads
from manifestcheck.install import INGRESS_GATEWAY, ISTIO_NAMESPACE, ingress_gateway, istio_operator
from manifestcheck.model import Finding, Manifest, mapping, pod_templates, resolve_host, sequence

HARDENING = (
    workloads.check_no_proxy_uid,
    workloads.check_security_context,
    workloads.check_resources,
    workloads.check_writable_paths,
)
PINNED = re.compile(r"^[^@\s]+:[^@\s:]+@sha256:[0-9a-f]{64}$")
INGRESS_HOST = resolve_host(f"{INGRESS_GATEWAY}.{ISTIO_NAMESPACE}", ISTIO_NAMESPACE)


def check_components(components: Mapping[str, Sequence[Manifest]], install: Sequence[Manifest]) -> list[Finding]:
    findings = []
    for manifests in components.values():
        for check in HARDENING:
            findings += check(manifests)
        findings += check_pinned_images(manifests)
        findings += check_load_target(manifests, install)
    return findings


def check_pinned_images(manifests: Sequence[Manifest]) -> list[Finding]:
    """A third party's image by release and digest: the tag says which, the digest makes it so."""
    findings = []
    for template in pod_templates(manifests):
        for path, container in template.containers():
            image = str(container.get("image") or "")
            if not PINNED.match(image):
                findings.append(
                    template.finding("pinned-image", f"{path}.image", f"{image!r} is not name:tag@sha256:<digest>")
                )
    return findings


def ingress_ports(install: Sequence[Manifest]) -> set[int]:
    """The ports of the ingress gateway's Service, as the IstioOperator declares them."""
    operator = istio_operator(install)
    found = ingress_gateway(operator) if operator is not None else None
    if found is None:
        return set()
    service = mapping(mapping(found[1].get("k8s")).get("service"))
    return {mapping(p).get("port") for p in sequence(service.get("ports"))} - {None}


def check_load_target(manifests: Sequence[Manifest], install: Sequence[Manifest]) -> list[Finding]:
    """Every URL a container is given goes to the ingress gateway's Service, at one of its ports:
    the load enters as a client's does, through the edge's policy and limits."""
    ports = ingress_ports(install)
    findings = []
    for template in pod_templates(manifests):
        for path, container in template.containers():
            args = [str(a) for a in sequence(container.get("args"))]
            for index, arg in enumerate(args):
                if "://" not in arg:
                    continue
                url = urlsplit(arg)
                field = f"{path}.args[{index}]"
                try:
                    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
                except ValueError:
                    port = None
                host = resolve_host(url.hostname or "", template.namespace)
                if host != INGRESS_HOST:
                    message = f"{url.hostname} is not the ingress gateway ({INGRESS_HOST})"
                    findings.append(template.finding("load-target", field, message))
                elif port not in ports:
                    message = f"port {port} is not a port of the ingress gateway's Service ({sorted(ports)})"
                    findings.append(template.finding("load-target", field, message))
    return findings
