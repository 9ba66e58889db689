"""The defaults of servicekit/gunicorn_conf.py's timing settings, importable without loading
gunicorn or reading the environment: manifestcheck checks the manifests against them."""

# Longer than any idle timeout in front of us (the DestinationRules' idleTimeout is 30 s).
KEEPALIVE_SECONDS = 75
# /readyz fails this long before the listener closes, while endpoints are withdrawn.
SHUTDOWN_DRAIN_SECONDS = 5.0
# Time for the requests in flight after that.
GRACEFUL_TIMEOUT_SECONDS = 20
