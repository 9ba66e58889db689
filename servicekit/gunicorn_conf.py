"""Production settings for both services: ``gunicorn -c python:servicekit.gunicorn_conf``.

One worker process with threads, per container; scale with replicas. Why:
prometheus-client then counts in one process, so there is no multiprocess mode
(whose .db files slow scrapes as they pile up, and which forbids exemplars),
and the OpenTelemetry batch exporter's thread lives in the only process that
makes spans. The work per request is small and mostly waiting on I/O, so
threads serve it well despite the GIL; Kubernetes or the local runner adds
replicas for more.

Every value can be changed from the environment (named beside it), and the
command line wins over this file.
"""

import logging
import os
import time

from gunicorn.glogging import Logger

from servicekit import serving_defaults as defaults
from servicekit.lifecycle import process_drain_flag
from servicekit.settings import env_float, env_int

bind = os.environ.get("BIND", "0.0.0.0:8080")
workers = 1
# gthread, with its refusals before the app (too long a request line, too many headers) as JSON.
worker_class = "servicekit.gunicorn_worker.JsonErrorThreadWorker"
threads = env_int(os.environ, "GUNICORN_THREADS", 8, 1, 256)
# Longer than any idle timeout in front of us (the DestinationRule's
# idleTimeout is 30s): the proxy must close an idle connection before we do,
# or it may send a request on a connection we are closing (Envoy's 503 UC).
keepalive = env_int(os.environ, "KEEPALIVE_SECONDS", defaults.KEEPALIVE_SECONDS, 1, 3600)
timeout = env_int(os.environ, "WORKER_TIMEOUT_SECONDS", 30, 1, 3600)
graceful_timeout = env_int(os.environ, "GRACEFUL_TIMEOUT_SECONDS", defaults.GRACEFUL_TIMEOUT_SECONDS, 1, 3600)
# Time between SIGTERM and closing the listener, while /readyz says 503 so
# that load balancers stop sending; the pod's terminationGracePeriodSeconds
# must exceed this plus graceful_timeout.
drain_seconds = env_float(os.environ, "SHUTDOWN_DRAIN_SECONDS", defaults.SHUTDOWN_DRAIN_SECONDS, 0.0, 300.0)

# No control socket: nothing should be able to reconfigure a running server,
# and the root filesystem is read-only in the container.
control_socket_disable = True
accesslog = None
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"json": {"()": "servicekit.telemetry.json_log_handler"}},
    "root": {"handlers": ["json"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["json"], "level": "INFO", "propagate": False},
        # The app logs each request itself, with its trace id and route template.
        "gunicorn.access": {"handlers": ["json"], "level": "WARNING", "propagate": False},
    },
}


class AppLogsRequestsLogger(Logger):
    """gunicorn's logger, minus the access-log fields it builds for every request.

    gunicorn assembles a dozen fields (``atoms``) per request whenever a logging
    config is given, before the logger's level drops the line; gunicorn.access is
    at WARNING above, so that was ~3% of a replica's CPU spent on nothing.
    """

    def access(self, resp, req, environ, request_time):
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)


logger_class = AppLogsRequestsLogger
# Requests larger than this never reach Flask.
limit_request_line = 4094
limit_request_fields = 64
limit_request_field_size = 8190


def on_starting(server):
    # Made in the master before any worker is forked, so all of them see it.
    process_drain_flag()


def when_ready(server):
    flag = process_drain_flag()
    stop = server.handle_term

    def drain_then_stop():
        flag.set()
        server.log.info("SIGTERM: /readyz now fails; draining for %.1fs", drain_seconds)
        time.sleep(drain_seconds)  # keep serving while endpoints are withdrawn
        stop()

    server.handle_term = drain_then_stop


def post_worker_init(worker):
    # In the worker, where the app and its state live: an admin surface the app registered.
    from servicekit.admin import start_registered

    worker.admin_surface = start_registered(worker.wsgi)


def worker_exit(server, worker):
    from servicekit.telemetry import shutdown_tracing

    shutdown_tracing()
    surface = getattr(worker, "admin_surface", None)
    if surface is not None:
        surface.stop()
