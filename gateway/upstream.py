"""The gateway's call to the calculator: one bounded attempt, no retries of its own.

Retries belong to the mesh. A retry here would multiply the mesh's: with
Istio's 2 retries at the sidecar and 2 here, one bad replica sees 9 attempts
per client request (the bug of Bookinfo's productpage).

The client is the standard library's ``http.client`` with a small pool of
keep-alive connections. It replaced ``requests``, which for every call re-read
the proxy variables and ~/.netrc and went through several layers of adapters:
four to five times the CPU of this client per call (BENCHMARKS.md). What
``requests`` gave that matters here is kept: the standard proxy variables
(``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``, how the local mesh puts its
sidecar Envoy in this path), a timeout on connecting and on each read, no
redirects, a pooled connection checked before reuse.
"""

from __future__ import annotations

import http.client
import select
import threading
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit


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
    """The proxy the standard variables name for ``url``, or None (none set, or NO_PROXY matches).

    Read once, when the client is made: a process's environment does not change
    while it runs, and reading it per call is what made ``requests`` slow here.
    """
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    host = parts.hostname or ""
    if urllib.request.proxy_bypass_environment(host if parts.port is None else f"{host}:{parts.port}", proxies):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle pooled connection was closed by the other end (readable means EOF here)."""
    sock = connection.sock
    if sock is None:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class CalculatorClient:
    def __init__(self, url: str, timeout: float, pool_size: int):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"CALCULATOR_URL={url!r}: expected an http:// or https:// URL")
        self.url = url
        self.timeout = timeout
        self._pool_size = pool_size
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._host, self._port = parts.hostname, parts.port
        origin_form = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._target = origin_form
        self._tunnel = None
        proxy = proxy_for(url)
        if proxy is not None:
            proxy_parts = urlsplit(proxy)
            if parts.scheme == "http":
                # A plain-HTTP proxy gets the absolute URI ("POST http://calculator/calcular"),
                # and takes the Host header from it, as requests sent it.
                self._connection_class = http.client.HTTPConnection
                self._host, self._port = proxy_parts.hostname, proxy_parts.port or 80
                self._target = url
            else:
                # HTTPS through a proxy: a CONNECT tunnel, then TLS to the calculator.
                self._tunnel = (parts.hostname, parts.port or 443)
                self._host, self._port = proxy_parts.hostname, proxy_parts.port or 80

    def _new_connection(self) -> http.client.HTTPConnection:
        connection = self._connection_class(self._host, self._port, timeout=self.timeout)
        if self._tunnel is not None:
            connection.set_tunnel(*self._tunnel)
        return connection

    def _acquire(self) -> http.client.HTTPConnection:
        with self._lock:
            while self._idle:
                connection = self._idle.pop()  # the most recently used: the least likely to be closed
                if not _dropped(connection):
                    return connection
                connection.close()
        return self._new_connection()

    def _release(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append(connection)
                return
        connection.close()

    def post(self, body: bytes, headers: dict[str, str]) -> UpstreamResponse:
        connection = self._acquire()
        try:
            connection.request("POST", self._target, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except TimeoutError as error:  # before OSError, which it is; a connect timeout too
            connection.close()
            raise UpstreamTimeout(str(error) or "timed out") from error
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise UpstreamUnavailable(str(error) or type(error).__name__) from error
        answer_headers: dict[str, str] = {}
        for name, value in response.getheaders():
            name = name.lower()
            answer_headers[name] = f"{answer_headers[name]}, {value}" if name in answer_headers else value
        if response.will_close:
            connection.close()
        else:
            self._release(connection)
        return UpstreamResponse(status=response.status, body=data, headers=answer_headers)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
