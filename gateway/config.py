"""The gateway's settings, all from the environment, all with working defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from servicekit.settings import env_float, env_int, env_str

# Headers the mesh needs copied from the inbound request to the outbound call:
# Envoy never does it by itself. x-request-id ties Envoy's access logs
# together; x-canary lets the calculator's VirtualService route on it.
DEFAULT_FORWARD_HEADERS = ("x-request-id", "x-canary")


@dataclass(frozen=True)
class GatewaySettings:
    calculator_url: str = "http://calculator/calcular"
    # Bounded, and longer than the mesh's route timeout, so the mesh's 504
    # reaches the client rather than ours.
    calculator_timeout_seconds: float = 5.0
    max_request_bytes: int = 1024
    upstream_pool_size: int = 16
    forward_headers: tuple[str, ...] = DEFAULT_FORWARD_HEADERS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "GatewaySettings":
        forward = env_str(environ, "FORWARD_HEADERS", ",".join(DEFAULT_FORWARD_HEADERS))
        return cls(
            calculator_url=env_str(environ, "CALCULATOR_URL", cls.calculator_url),
            calculator_timeout_seconds=env_float(
                environ, "CALCULATOR_TIMEOUT_SECONDS", cls.calculator_timeout_seconds, 0.01, 300
            ),
            max_request_bytes=env_int(environ, "MAX_REQUEST_BYTES", cls.max_request_bytes, 64, 1 << 20),
            upstream_pool_size=env_int(environ, "UPSTREAM_POOL_SIZE", cls.upstream_pool_size, 1, 1024),
            forward_headers=tuple(h.strip().lower() for h in forward.split(",") if h.strip()),
        )
