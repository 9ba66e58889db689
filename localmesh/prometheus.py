"""Debian's Prometheus beside the local mesh, scraping what a cluster's would.

The scrape configuration gives each series the labels the dashboard reads on
a cluster, where Istio's Prometheus adds the pod's labels (``namespace``,
``app``, ``version``, ``pod``) and Istio merges each sidecar's Envoy metrics
into its pod's scrape: here the app and its sidecar are two targets with the
same pod labels. The ingress Envoy is labelled as Istio's ingress gateway, and
its counters of the requests it sends upstream are reported under Istio's own
names (``istio_requests_total``, ``istio_request_duration_milliseconds``, with
the labels a cluster's ingress gateway gives them): the SLO rules
(slo/rules.yaml) are then one file for both.

Alertmanager (Debian's prometheus-alertmanager), where installed, receives the
rules' alerts: on 127.0.0.1 only, its own data directory, no HA cluster port.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from localmesh.processes import ManagedProcess, http_status

ENVOY_METRICS_PATH = "/stats/prometheus"
ROOT = Path(__file__).resolve().parents[1]
SLO_RULES = ROOT / "slo" / "rules.yaml"
# An Istio outbound cluster: outbound|<port>|<subset>|<service>.<namespace>.svc.cluster.local
_OUTBOUND = r"outbound\|\d+\|[^|]*\|([^.|]+)\.([^.|]+)\.svc\.cluster\.local"


def ingress_as_istio() -> list[dict]:
    """metric_relabel_configs giving the ingress Envoy's upstream counters the names and labels of
    the metrics Istio's ingress gateway reports (reporter="source"). Envoy counts each response by
    code (upstream_rq_<code>, the 503 and 504 it makes itself included) and times it
    (upstream_rq_time, in ms, with the buckets Istio's histogram has). Pure."""
    def on(name_regex: str, target: str, replacement: str, sources=("__name__",)) -> dict:
        return {"source_labels": list(sources), "regex": name_regex, "target_label": target, "replacement": replacement}

    codes = "envoy_cluster_upstream_rq_(\\d{3});" + _OUTBOUND
    times = "envoy_cluster_upstream_rq_time_(bucket|sum|count);" + _OUTBOUND
    both = ("__name__", "cluster_name")
    istio = "(istio_requests_total|istio_request_duration_milliseconds_.*)"
    return [
        on(codes, "response_code", "$1", both),
        on(codes, "destination_service_name", "$2", both),
        on(codes, "destination_service_namespace", "$3", both),
        on(times, "destination_service_name", "$2", both),
        on(times, "destination_service_namespace", "$3", both),
        on(codes, "__name__", "istio_requests_total", both),
        on(times, "__name__", "istio_request_duration_milliseconds_$1", both),
        on(istio, "reporter", "source"),
        on(istio, "source_workload", "istio-ingressgateway"),
        on(istio, "source_workload_namespace", "istio-system"),
        on(istio, "cluster_name", ""),  # Istio's series have no cluster_name
    ]


@dataclass(frozen=True)
class Target:
    address: str  # host:port
    labels: dict[str, str]


def scrape_config(
    apps: list[Target],
    sidecars: list[Target],
    ingress: Target | None,
    interval: str = "5s",
    rule_files: list[Path] = (),
    alertmanager: str | None = None,
) -> dict:
    """A prometheus.yml for the local mesh: its rule files, and the Alertmanager (host:port) that gets
    their alerts. Pure."""

    def job(name: str, targets: list[Target], path: str = "/metrics") -> dict:
        return {
            "job_name": name,
            "metrics_path": path,
            "static_configs": [{"targets": [t.address], "labels": t.labels} for t in targets],
        }

    jobs = [job("kubernetes-pods", apps), job("envoy-sidecars", sidecars, ENVOY_METRICS_PATH)]
    if ingress is not None:
        jobs.append({**job("istio-ingressgateway", [ingress], ENVOY_METRICS_PATH), "metric_relabel_configs": ingress_as_istio()})
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [j for j in jobs if j["static_configs"]],
    }
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


class _PrometheusProjectServer(ManagedProcess):
    """Prometheus or Alertmanager: a YAML config and a data directory under ``work_dir``, one
    loopback port, ready when ``/-/ready`` answers 200."""

    name = ""  # the binary's short name, its config file's and log's
    package = ""  # the Debian package that has it

    def __init__(self, work_dir: Path, port: int):
        super().__init__(self.name, Path(work_dir) / f"{self.name}.log")
        self.work_dir = Path(work_dir)
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def binary(self) -> str | None:
        raise NotImplementedError

    def arguments(self, config_path: Path) -> list[str]:
        raise NotImplementedError

    def _start(self, config: dict) -> None:
        binary = self.binary()
        if binary is None:
            raise RuntimeError(f"{self.name} not found: apt-get install {self.package}")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.work_dir / f"{self.name}.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._launch([binary, *self.arguments(config_path)])

    def wait_ready(self, timeout: float = 30.0) -> None:
        self._wait_for(
            lambda: http_status("127.0.0.1", self.port, "/-/ready") == 200, timeout, f"{self.name} ready"
        )


class PrometheusProcess(_PrometheusProjectServer):
    name, package = "prometheus", "prometheus"

    def binary(self) -> str | None:
        return prometheus_binary()

    def arguments(self, config_path: Path) -> list[str]:
        return [
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            # Exemplars carry the trace ids of the latency histograms.
            "--enable-feature=exemplar-storage",
        ]

    def start(self, config: dict) -> None:
        self._start(config)


def alertmanager_binary() -> str | None:
    # Debian names it prometheus-alertmanager; upstream's tarball, alertmanager.
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def alertmanager_config() -> dict:
    """Every alert to one receiver with no notifier: the alerts are seen in Alertmanager's page and API
    (and make status); a real deployment adds its pager or chat here. Pure."""
    return {
        "route": {"receiver": "local", "group_by": ["alertname", "slo", "severity"], "group_wait": "10s"},
        "receivers": [{"name": "local"}],
    }


class AlertmanagerProcess(_PrometheusProjectServer):
    name, package = "alertmanager", "prometheus-alertmanager"

    def binary(self) -> str | None:
        return alertmanager_binary()

    def arguments(self, config_path: Path) -> list[str]:
        return [
            f"--config.file={config_path}",
            f"--storage.path={self.work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            # No HA gossip: by default it listens on every interface, port 9094.
            "--cluster.listen-address=",
        ]

    def start(self, config: dict | None = None) -> None:
        self._start(config or alertmanager_config())


def query_vector(prometheus_url: str, expression: str, timeout: float = 3.0) -> list[dict]:
    """An instant query's result (``[{"metric": {...}, "value": [time, "value"]}]``); OSError when
    Prometheus does not answer or refuses the query."""
    import http.client
    import json
    import urllib.parse
    import urllib.request

    url = f"{prometheus_url}/api/v1/query?query={urllib.parse.quote(expression)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except (ValueError, http.client.HTTPException) as error:  # not JSON, or cut short
        raise OSError(f"no usable answer from {url}: {error}") from None
    if not isinstance(body, dict) or body.get("status") != "success":
        raise OSError(f"{expression}: {body.get('error', body) if isinstance(body, dict) else body}")
    result = (body.get("data") or {}).get("result")
    if not isinstance(result, list):
        raise OSError(f"{expression}: no result in {body}")
    return result
