"""Offline validation of the Kubernetes and Istio manifests, the dashboard and the kind flow.

Pure checks take parsed documents (``manifestcheck.loading`` reads them) and
return ``Finding``s naming file, resource and field; ``python -m manifestcheck``
runs them all. What no offline check can see is listed in docs/kind.md.
"""
