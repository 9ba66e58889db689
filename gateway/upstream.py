"""The gateway's call to the calculator: one bounded attempt, no retries of its own.

Retries belong to the mesh. A retry here would multiply the mesh's: with
Istio's 2 retries at the sidecar and 2 here, one bad replica sees 9 attempts
per client request (the bug of Bookinfo's productpage).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter


class UpstreamUnavailable(Exception):
    """No answer: connection refused or reset, name not found."""


class UpstreamTimeout(Exception):
    """No answer within the gateway's timeout."""


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def is_json(self) -> bool:
        return self.headers.get("content-type", "").split(";")[0].strip() == "application/json"


class CalculatorClient:
    def __init__(self, url: str, timeout: float, pool_size: int):
        self.url = url
        self.timeout = timeout
        # requests honours HTTP_PROXY/NO_PROXY (trust_env): the local mesh puts
        # its sidecar Envoy in this path that way, with no code change.
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def post(self, body: bytes, headers: dict[str, str]) -> UpstreamResponse:
        try:
            response = self.session.post(
                self.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.Timeout as error:  # before ConnectionError: ConnectTimeout is both
            raise UpstreamTimeout(str(error)) from error
        except requests.RequestException as error:
            raise UpstreamUnavailable(str(error)) from error
        return UpstreamResponse(
            status=response.status_code,
            body=response.content,
            headers={k.lower(): v for k, v in response.headers.items()},
        )

    def close(self) -> None:
        self.session.close()
