"""The retry-policy benchmark's copies of the manifests: only the policy it compares differs."""

from __future__ import annotations

from bench.retry_policy import GATEWAY_CLUSTER, gateway_root
from localmesh.loader import Layout, load_mesh
from localmesh.translate import read_manifests
from localmesh.translate.kube import service_fqdn


def outlier(root, service):
    manifests = read_manifests(load_mesh(Layout(root)))
    rule = manifests.destination_rule(service_fqdn(service, "meshcalc"), "meshcalc")
    return rule.traffic_policy.outlier_detection


def test_the_gateway_copy_changes_the_gateways_ejection_only(tmp_path):
    from bench.retry_policy import ROOT

    root = gateway_root(tmp_path, "30s", "5s")
    changed = outlier(root, "gateway")
    assert (changed.base_ejection_time, changed.interval) == ("30s", "5s")
    # everything else of the gateways' detector, and the calculator's, as in istio/
    shipped = outlier(ROOT, "gateway")
    assert changed.consecutive_local_origin_failures == shipped.consecutive_local_origin_failures
    assert changed.max_ejection_percent == shipped.max_ejection_percent
    assert outlier(root, "calculator") == outlier(ROOT, "calculator")


def test_the_ingress_cluster_it_reads_is_the_gateway_services():
    assert GATEWAY_CLUSTER == f"outbound|80||{service_fqdn('gateway', 'meshcalc')}"
