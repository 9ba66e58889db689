"""The CLIENT span of an outbound call: opentelemetry-instrumentation-urllib3, completed to spec.

The instrumentation (0.66b1) makes the span, injects the trace context and sets
``http.request.method``, ``url.full`` and ``http.response.status_code``, with
ERROR status on a 4xx or 5xx and the exception recorded on a failure. Two
attributes the HTTP semantic conventions require of a client span it leaves
out, and this module adds them through the instrumentation's own hook and
urllib3's own retry policy:

- ``server.address`` and ``server.port``, of the URL asked for: behind a proxy
  (the local mesh's sidecar) the pool is the proxy's, and the conventions name
  the server behind the intermediary;
- ``error.type`` when no answer came (a TODO in the instrumentation's code).
  urllib3 hands every failed attempt to ``Retry.increment`` while the span is
  still current, so the policy that refuses to retry also names the failure.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
from opentelemetry.trace import Span
from urllib3.util.retry import Retry

_DEFAULT_PORTS = {"http": 80, "https": 443}
_lock = threading.Lock()


def exception_type(error: BaseException) -> str:
    """The class's fully qualified name, as the SDK writes ``exception.type`` (the conventions' ``error.type``)."""
    kind = type(error)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _server_of_url(span: Span, pool, request_info) -> None:
    if not span.is_recording():
        return
    parts = urlsplit(request_info.url)
    if parts.hostname:
        span.set_attribute("server.address", parts.hostname)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    if port is not None:
        span.set_attribute("server.port", port)


class NoRetries(Retry):
    """One attempt, no redirect followed: a failure is raised as it is, named on the current span first.

    Retries belong to the mesh (``gateway/upstream.py`` says why).
    """

    def __init__(self, total=False, redirect=False, **kwargs):
        # Retry.new() rebuilds the policy with every field: accept them all.
        super().__init__(total=total, redirect=redirect, **kwargs)

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if error is not None:
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attribute("error.type", exception_type(error))
        return super().increment(method, url, response, error, _pool, _stacktrace)


def instrument_urllib3(tracer_provider) -> None:
    """Trace every urllib3 request of this process, once (the instrumentation patches urllib3 itself)."""
    with _lock:
        instrumentor = URLLib3Instrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=tracer_provider, request_hook=_server_of_url)
