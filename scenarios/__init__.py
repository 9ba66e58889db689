"""The scenario catalogue and its runner: each fault-tolerance mechanism of the document, applied,
loaded and judged, on the local mesh (``localmesh``) or on a kind cluster.

- ``catalogue``: what each scenario is (its policy files, its faults, its load, its expectation);
- ``policy``: the numbers the expectations judge, read from the Istio YAML they judge;
- ``topology``: the replicas, named from the manifests;
- ``measurement`` and ``checks``: what a run measured and the pure verdicts over it;
- ``render``: the table, the JSON report, the progress line;
- ``local`` and ``kind``: the two backends that apply a scenario and measure it.
"""
