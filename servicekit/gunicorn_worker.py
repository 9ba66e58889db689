"""gunicorn's gthread worker, whose refusals before the app are JSON like the app's errors, and
whose threads do not wait forever for a request body.

gunicorn answers a request it cannot parse (a request line over 4094 bytes,
more than 64 headers, a header over 8190 bytes, a bad header name, a bad
chunk) itself, with an English HTML page. Through the mesh such a request
passes Envoy, whose limits are larger, and reaches gunicorn: the client then
got HTML where every other error is ``{"error": "<mensaje>"}``. This worker
keeps gunicorn's decision (status, logging, access log) and only changes the
body it writes.

A body that stops arriving (a stalled upload) held a thread until the client
left: gunicorn waits for a request's first bytes at most 5 s, but then reads
without a timeout, and Envoy forwards a body as it comes. With
``REQUEST_BODY_TIMEOUT_SECONDS`` (3 s) between two reads of the body, such a
request ends with 408 and its thread is free again. (A request line or headers
sent slowly still hold a thread when gunicorn is reached directly; in the mesh
an Envoy, which buffers them, is always in front.)
"""

from __future__ import annotations

import json
import os

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from servicekit.messages import GUNICORN as MESSAGES


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error``, with a JSON body in Spanish (gunicorn's detail is logged, not sent)."""
    body = json.dumps({"error": MESSAGES.get(status_int, MESSAGES[400])}, ensure_ascii=False).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin1")
    util.write_nonblock(sock, head + body)


def body_timeout(environ=os.environ) -> float:
    from servicekit.settings import env_float

    return env_float(environ, "REQUEST_BODY_TIMEOUT_SECONDS", 3.0, 0.1, 300.0)


class JsonErrorThreadWorker(ThreadWorker):
    def init_process(self):
        # In the worker only: handle_error calls util.write_error by module attribute.
        util.write_error = write_json_error
        self.body_timeout = body_timeout()
        super().init_process()

    def handle_request(self, req, conn):
        # The headers are read: from here on the app reads the body, each read bounded.
        conn.sock.settimeout(self.body_timeout)
        try:
            return super().handle_request(req, conn)
        finally:
            if conn.sock.fileno() != -1:
                conn.sock.settimeout(None)
