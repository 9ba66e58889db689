"""`python -m manifestcheck [ROOT]`: every offline check of the Kubernetes and Istio manifests.

Prints one line per finding and exits 1 if there is any; 0 when all pass.
A missing tool (promtool, shellcheck, actionlint) is reported as skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from manifestcheck.checks import offline_checks, tool_checks
from manifestcheck.loading import load_repository


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m manifestcheck", description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=".", help="the repository's root (default: .)")
    parser.add_argument("--no-tools", action="store_true", help="skip promtool, shellcheck and actionlint")
    arguments = parser.parse_args(argv)

    repository = load_repository(Path(arguments.root))
    findings = offline_checks(repository)
    skipped: list[str] = []
    if not arguments.no_tools:
        report = tool_checks(repository)
        findings += report.findings
        skipped = report.skipped
    for finding in findings:
        print(finding)
    for reason in skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    checked = len(repository.mesh) + sum(len(s) for s in (*repository.scenarios.values(), *repository.components.values()))
    print(
        f"manifestcheck: {len(findings)} finding(s) in {checked} manifests and {len(repository.scenarios)} scenarios",
        file=sys.stderr,
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
