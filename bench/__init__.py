"""Benchmarks of the three paths (calculator, gateway, mesh) and of the telemetry: ``python -m bench``."""
