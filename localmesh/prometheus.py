"""Debian's Prometheus beside the local mesh, scraping what a cluster's would.

The scrape configuration gives each series the labels the dashboard reads on
a cluster, where Istio's Prometheus adds the pod's labels (``namespace``,
``app``, ``version``, ``pod``) and Istio merges each sidecar's Envoy metrics
into its pod's scrape: here the app and its sidecar are two targets with the
same pod labels. The ingress Envoy is labelled as Istio's ingress gateway.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from localmesh.processes import ManagedProcess, http_status

ENVOY_METRICS_PATH = "/stats/prometheus"


@dataclass(frozen=True)
class Target:
    address: str  # host:port
    labels: dict[str, str]


def scrape_config(
    apps: list[Target], sidecars: list[Target], ingress: Target | None, interval: str = "5s"
) -> dict:
    """A prometheus.yml for the local mesh. Pure."""

    def job(name: str, targets: list[Target], path: str = "/metrics") -> dict:
        return {
            "job_name": name,
            "metrics_path": path,
            "static_configs": [{"targets": [t.address], "labels": t.labels} for t in targets],
        }

    jobs = [job("kubernetes-pods", apps), job("envoy-sidecars", sidecars, ENVOY_METRICS_PATH)]
    if ingress is not None:
        jobs.append(job("istio-ingressgateway", [ingress], ENVOY_METRICS_PATH))
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [j for j in jobs if j["static_configs"]],
    }


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


class PrometheusProcess(ManagedProcess):
    def __init__(self, work_dir: Path, port: int):
        super().__init__("prometheus", Path(work_dir) / "prometheus.log")
        self.work_dir = Path(work_dir)
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, config: dict) -> None:
        binary = prometheus_binary()
        if binary is None:
            raise RuntimeError("prometheus not found: apt-get install prometheus")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.work_dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._launch(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.work_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                # Exemplars carry the trace ids of the latency histograms.
                "--enable-feature=exemplar-storage",
            ]
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        self._wait_for(
            lambda: http_status("127.0.0.1", self.port, "/-/ready") == 200, timeout, "prometheus ready"
        )
