"""The gateway's call to the calculator: one bounded attempt, no retries of its own.

Retries belong to the mesh. A retry here would multiply the mesh's: with
Istio's 2 retries at the sidecar and 2 here, one bad replica sees 9 attempts
per client request (the bug of Bookinfo's productpage).

The client is urllib3, the pool under requests: keep-alive connections checked
before reuse, at most ``pool_size`` kept idle; a timeout on connecting and on
each read; no retries and no redirects. The standard proxy variables
(``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``, how the local mesh puts its
sidecar Envoy in this path) are read once, when the client is made: a
process's environment does not change while it runs, and reading it per call
(as requests does) is most of what a call costs. The call's CLIENT span is
opentelemetry-instrumentation-urllib3's (``servicekit.client_tracing``).
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection
from urllib3.exceptions import HTTPError, NewConnectionError, ProxyError

from servicekit.client_tracing import NoRetries


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


def proxy_for(url: str) -> str | None:
    """The proxy the standard variables name for ``url``, or None (none set, or NO_PROXY matches)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    host = parts.hostname or ""
    if urllib.request.proxy_bypass_environment(host if parts.port is None else f"{host}:{parts.port}", proxies):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def failure_of(error: HTTPError) -> Exception:
    """urllib3's error as the gateway's: a timeout, or no answer at all."""
    cause = error.original_error if isinstance(error, ProxyError) else error
    # NewConnectionError (refused, unreachable) subclasses ConnectTimeoutError in urllib3 2.
    timed_out = isinstance(cause, (urllib3.exceptions.TimeoutError, TimeoutError)) and not isinstance(
        cause, NewConnectionError
    )
    kind = UpstreamTimeout if timed_out else UpstreamUnavailable
    return kind(str(error) or type(error).__name__)


class CalculatorClient:
    def __init__(self, url: str, timeout: float, pool_size: int):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"CALCULATOR_URL={url!r}: expected an http:// or https:// URL")
        self.url = url
        self.timeout = timeout
        options = dict(
            num_pools=1,  # one origin: the calculator, or the proxy in front of it
            maxsize=pool_size,
            block=False,  # past maxsize a call opens a connection of its own, closed after
            retries=NoRetries(),
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            # TCP_NODELAY, through a proxy too: urllib3 turns Nagle's algorithm back on for
            # proxies, and its request goes out in two writes (head, then body), so the body
            # waited for the proxy's delayed ACK: 40 ms a call through the sidecar (BENCHMARKS.md).
            socket_options=HTTPConnection.default_socket_options,
        )
        proxy = proxy_for(url)
        # A plain-HTTP proxy gets the absolute URI ("POST http://calculator/calcular"); HTTPS
        # goes through a CONNECT tunnel, then TLS to the calculator.
        self._http = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)

    def post(self, body: bytes, headers: dict[str, str]) -> UpstreamResponse:
        try:
            response = self._http.urlopen("POST", self.url, body=body, headers=headers, redirect=False)
        except HTTPError as error:
            raise failure_of(error) from error
        answer_headers = {name.lower(): response.headers[name] for name in response.headers}
        return UpstreamResponse(status=response.status, body=response.data, headers=answer_headers)

    def close(self) -> None:
        self._http.clear()
