"""The calculator's settings, all from the environment, all with working defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from calculator.faults import Fault
from servicekit.settings import SettingsError, env_bool, env_float, env_int, env_str

VERSIONS = ("v1", "v2")


@dataclass(frozen=True)
class CalculatorSettings:
    version: str = "v1"
    results_file: Path = Path("data/resultados.txt")
    results_fsync: bool = False
    max_request_bytes: int = 1024
    max_results_limit: int = 1000
    # The fault from the first request, off by default; a response it touches says so. At run
    # time, the admin surface changes it (calculator/faults.py, calculator/admin.py).
    fault_failure_rate: float = 0.0
    fault_delay_seconds: float = 0.0
    # host:port of the admin surface (faults at run time); unset: none. Loopback only: it
    # answers anyone who reaches it.
    admin_bind: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "CalculatorSettings":
        version = env_str(environ, "CALCULATOR_VERSION", "v1")
        if version not in VERSIONS:
            raise SettingsError(f"CALCULATOR_VERSION={version!r}: expected one of {VERSIONS}")
        data_dir = Path(env_str(environ, "DATA_DIR", "data"))
        return cls(
            version=version,
            results_file=Path(env_str(environ, "RESULTS_FILE", str(data_dir / "resultados.txt"))),
            results_fsync=env_bool(environ, "RESULTS_FSYNC", False),
            max_request_bytes=env_int(environ, "MAX_REQUEST_BYTES", 1024, 64, 1 << 20),
            max_results_limit=env_int(environ, "MAX_RESULTS_LIMIT", 1000, 1, 100_000),
            fault_failure_rate=env_float(environ, "FAULT_FAILURE_RATE", 0.0, 0.0, 1.0),
            fault_delay_seconds=env_float(environ, "FAULT_DELAY_SECONDS", 0.0, 0.0, 600.0),
            admin_bind=environ.get("ADMIN_BIND") or None,
        )

    def initial_fault(self) -> Fault:
        return Fault(errors=self.fault_failure_rate, delay_seconds=self.fault_delay_seconds)
