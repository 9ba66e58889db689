"""Scenario files: each replaces exactly one base resource, and the mesh stays valid with it applied."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from manifestcheck.model import Finding, Manifest

REPLACEABLE_KINDS = ("VirtualService", "DestinationRule")
MeshCheck = Callable[[Sequence[Manifest]], list[Finding]]


def overlay(base: Sequence[Manifest], scenario: Sequence[Manifest]) -> list[Manifest]:
    """The base with the scenario's resources in place of those of the same kind, namespace and name."""
    replacements = {m.key: m for m in scenario}
    return [replacements.get(m.key, m) for m in base]


def check_scenario_shape(
    base: Sequence[Manifest], scenarios: Mapping[str, Sequence[Manifest]], sources: Mapping[str, str]
) -> list[Finding]:
    """One document per scenario, replacing one base VirtualService or DestinationRule."""
    keys = {m.key for m in base}
    findings = []
    for name, documents in scenarios.items():
        if len(documents) != 1:
            findings.append(
                Finding(
                    "scenario",
                    sources[name],
                    name,
                    "-",
                    f"{len(documents)} documents: a scenario replaces exactly one resource",
                )
            )
        for manifest in documents:
            if manifest.kind not in REPLACEABLE_KINDS:
                findings.append(
                    manifest.finding(
                        "scenario", "kind", f"a scenario replaces a {' or '.join(REPLACEABLE_KINDS)}"
                    )
                )
            elif manifest.key not in keys:
                findings.append(
                    manifest.finding(
                        "scenario",
                        "metadata.name",
                        f"no base {manifest.kind} {manifest.namespace}/{manifest.name}: applying it would add a resource, "
                        "and restoring the base would not remove it",
                    )
                )
    return findings


def check_scenarios_against_base(
    base: Sequence[Manifest], scenarios: Mapping[str, Sequence[Manifest]], checks: Sequence[MeshCheck]
) -> list[Finding]:
    """Every mesh check, run on the base with each scenario applied; reports what the scenario breaks."""
    already = {(f.check, f.file, f.resource, f.field, f.message) for check in checks for f in check(base)}
    findings = []
    for name, documents in scenarios.items():
        merged = overlay(base, documents)
        for check in checks:
            for finding in check(merged):
                if (finding.check, finding.file, finding.resource, finding.field, finding.message) in already:
                    continue
                findings.append(
                    Finding(
                        finding.check,
                        finding.file,
                        finding.resource,
                        finding.field,
                        f"{finding.message} (with scenario {name})",
                    )
                )
    return findings
