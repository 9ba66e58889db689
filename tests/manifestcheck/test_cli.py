"""`python -m manifestcheck`: silent and 0 on the repository, one line per finding and 1 on a broken copy."""

from __future__ import annotations

import subprocess
import sys

from manifestcheck.__main__ import main
from manifestcheck.loading import load_repository
from tests.manifestcheck.conftest import REPO_ROOT


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "manifestcheck", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )


def test_the_repository_passes():
    result = run_cli(str(REPO_ROOT))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "0 finding(s)" in result.stderr


def test_a_broken_copy_fails_with_file_resource_and_field(repo_copy, capsys):
    repo_copy.edit(
        "istio/calculator-destinationrule.yaml",
        lambda d: d["spec"]["trafficPolicy"]["outlierDetection"].pop("maxEjectionPercent"),
    )
    assert main([str(repo_copy.root), "--no-tools"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(
        line.startswith("istio/calculator-destinationrule.yaml: DestinationRule meshcalc/calculator: ")
        for line in lines
    )
    assert "spec.trafficPolicy.outlierDetection.maxEjectionPercent" in lines[0]
    assert lines[0].endswith("[outlier-detection]")


def test_unreadable_manifests_are_findings(repo_copy, capsys):
    repo_copy.write("istio/gateway.yaml", "spec: [unclosed\n")
    repo_copy.path("k8s/base/kustomization.yaml").write_text(
        repo_copy.path("k8s/base/kustomization.yaml").read_text() + "commonLabels:\n  team: mesh\n"
    )
    problems = load_repository(repo_copy.root).problems
    assert {(p.check, p.file) for p in problems} == {
        ("load", "istio/gateway.yaml"),
        ("kustomization", "k8s/base/kustomization.yaml"),
    }
    assert main([str(repo_copy.root), "--no-tools"]) == 1
    assert "only resources and namespace are read by the local mesh" in capsys.readouterr().out
