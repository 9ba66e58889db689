"""An admin surface beside a service: its own WSGI app on its own address, in a thread of the
worker, so that it answers even when every serving thread is busy (a replica told to hang).

Started by gunicorn's ``post_worker_init`` (``servicekit/gunicorn_conf.py``) when the app
registered one in ``app.extensions["admin_surface"]``. Bind it to loopback: it has no
authentication; on Kubernetes ``kubectl exec`` or ``port-forward`` reach it, nothing else does
(docs/kind.md).
"""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

EXTENSION = "admin_surface"
log = logging.getLogger("admin")


class _LoggingHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the stdlib's name)
        log.info("admin %s", format % args)


class AdminSurface:
    def __init__(self, bind: str, app):
        host, _, port = bind.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"ADMIN_BIND={bind!r}: expected host:port")
        self.host, self.port, self.app = host.strip("[]"), int(port), app
        self._server: WSGIServer | None = None

    def start(self) -> None:
        self._server = make_server(self.host, self.port, self.app, handler_class=_LoggingHandler)
        self.port = self._server.server_port  # the real one when asked for port 0
        thread = threading.Thread(target=self._server.serve_forever, name="admin-surface", daemon=True)
        thread.start()
        log.info("admin surface on %s:%d", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def start_registered(app) -> AdminSurface | None:
    """Start the admin surface a Flask app registered, if any."""
    surface = getattr(app, "extensions", {}).get(EXTENSION)
    if surface is not None:
        surface.start()
    return surface
