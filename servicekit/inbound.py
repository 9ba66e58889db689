"""What both services check of a request before using it: its Host, its body's size, and no
redirect built from it."""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import NotFound
from werkzeug.routing import RequestRedirect
from werkzeug.wsgi import get_input_stream

from servicekit.authority import is_valid_authority
from servicekit.errors import MESSAGES, ApiError
from servicekit.messages import INVALID_HOST as MSG_INVALID_HOST


def init_app(app: Flask) -> None:
    """Call after ``Telemetry.init_app``: its hook must start first for a refusal to be counted."""
    app.before_request(_check_request)


def _check_request() -> None:
    # An absent Host (HTTP/1.0) makes werkzeug use the server's own address: nothing to check.
    host = request.environ.get("HTTP_HOST")
    if host is not None and not is_valid_authority(host):
        raise ApiError(400, MSG_INVALID_HOST)
    # werkzeug's router answers /static//app.js or //healthz (merging slashes) with a 308 whose
    # Location is an absolute URL built from the Host header: a redirect to whatever host the
    # client names, and a page Flask's error handlers never see. No route here needs a redirect
    # (nor adding a trailing slash, the other one): a path no route matches as sent is a 404.
    if isinstance(request.routing_exception, RequestRedirect):
        raise NotFound()


def read_body(limit: int) -> bytes:
    """The whole body of the request, or 413 if it is longer than ``limit`` bytes, whatever its
    framing: Content-Length, chunked, or none.

    ``request.get_data()`` with MAX_CONTENT_LENGTH refuses a Content-Length over the limit, but
    reads a chunked body (gunicorn sets ``wsgi.input_terminated``) through werkzeug's
    ``LimitedStream(limit, is_max=True)``, which stops at the limit and returns what it read: the
    body cut short, then parsed as if whole. Here the stream is bounded one byte past the limit,
    and that byte arriving means too large. A body that stops arriving still raises werkzeug's
    ``ClientDisconnected`` (servicekit.errors answers 400 or 408).
    """
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, MESSAGES[413])  # before reading any of it
    stream = get_input_stream(request.environ, max_content_length=limit + 1)
    chunks, size = [], 0
    while size <= limit:
        chunk = stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise ApiError(413, MESSAGES[413])
    return b"".join(chunks)
