"""The kind workflow takes the Istio release from istio/install/istio-kind.yaml, as scripts/kind.sh does."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "kind.yml"
ISTIO_OPERATOR = ROOT / "istio" / "install" / "istio-kind.yaml"
READS_THE_TAG = "istio/install/istio-kind.yaml)\" >> \"$GITHUB_ENV\""


def istio_tag() -> str:
    return str(yaml.safe_load(ISTIO_OPERATOR.read_text())["spec"]["tag"])


def copies_of_the_istio_version(text: str, tag: str) -> list[str]:
    """Lines that name an Istio release: the tag itself, or ISTIO_VERSION set to a literal."""
    literal = re.compile(r"ISTIO_VERSION\s*[:=]\s*[\"']?\d")
    return [line.strip() for line in text.splitlines() if tag in line or literal.search(line)]


def test_no_workflow_names_an_istio_release_of_its_own():
    for workflow in sorted(WORKFLOW.parent.glob("*.yml")):
        assert copies_of_the_istio_version(workflow.read_text(), istio_tag()) == [], workflow.name


def test_the_rule_catches_a_copy():
    assert copies_of_the_istio_version('env:\n  ISTIO_VERSION: "1.29.0"\n', "1.30.4") == ['ISTIO_VERSION: "1.29.0"']
    assert copies_of_the_istio_version("curl .../istio-1.30.4/bin\n", "1.30.4") == ["curl .../istio-1.30.4/bin"]
    assert copies_of_the_istio_version('ISTIO_VERSION="$ISTIO_VERSION" sh -\n', "1.30.4") == []


def test_the_workflow_step_reads_the_tag_before_istioctl_is_installed(tmp_path):
    """Run the step's own command as the runner would, with $GITHUB_ENV a file."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["kind"]["steps"]
    names = [step.get("name", "") for step in steps]
    reading = next(i for i, step in enumerate(steps) if READS_THE_TAG in step.get("run", ""))
    installing = names.index("Install kind and istioctl")
    assert reading < installing
    env_file = tmp_path / "github_env"
    subprocess.run(
        ["bash", "-e", "-c", steps[reading]["run"]],
        cwd=ROOT, env={"GITHUB_ENV": str(env_file), "PATH": "/usr/bin:/bin"}, check=True, timeout=30,
    )
    assert env_file.read_text() == f"ISTIO_VERSION={istio_tag()}\n"


def test_scripts_kind_sh_reads_the_same_tag():
    script = (ROOT / "scripts" / "kind.sh").read_text()
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["kind"]["steps"]
    (command,) = [step["run"] for step in steps if READS_THE_TAG in step.get("run", "")]
    program = re.search(r"awk '([^']+)'", command).group(1)
    assert f"awk '{program}' \"$ROOT/istio/install/istio-kind.yaml\"" in script
