"""meshcalc's service-level objectives: the Prometheus rules (rules.yaml) and what a run cost (budget.py)."""
