"""The calculator's settings, all from the environment, all with working defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from servicekit.settings import SettingsError, env_bool, env_float, env_int, env_str

VERSIONS = ("v1", "v2")


@dataclass(frozen=True)
class CalculatorSettings:
    version: str = "v1"
    results_file: Path = Path("data/resultados.txt")
    results_fsync: bool = False
    max_request_bytes: int = 1024
    max_results_limit: int = 1000
    # Fault knobs for the demo, off by default; a response they touch says so.
    fault_failure_rate: float = 0.0
    fault_delay_seconds: float = 0.0

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
        )
