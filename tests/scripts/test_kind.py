"""scripts/ as a Docker Desktop user on macOS runs them: bash 3.2, BSD tools. Debian has neither,
so what they would trip on is checked in the text."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from manifestcheck.loading import load_repository
from tests.tools import KUBECTL, needs_kubectl

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))
# "${name[@]}" not inside ${name[@]+...}: under set -u, bash before 4.4 calls an empty array unbound.
BARE_EXPANSION = re.compile(r'(?<!\[@\]\+)"\$\{(\w+)\[@\]\}"')


def unsafe_expansions(text: str) -> list[str]:
    """Arrays expanded bare that the script does not declare with a literal element."""
    never_empty = set(re.findall(r"^\s*(?:local\s+|readonly\s+)?(\w+)=\(\s*[^)\s]", text, re.M))
    return [name for name in BARE_EXPANSION.findall(text) if name not in never_empty]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_array_expansion_that_bash_3_2_refuses(script):
    assert unsafe_expansions(script.read_text()) == []


def test_the_rule_catches_the_expansion_that_broke_macos():
    broken = 'need() {\n\tlocal missing=()\n\tfor tool in "${missing[@]}"; do :; done\n}\n'
    assert unsafe_expansions(broken) == ["missing"]
    assert unsafe_expansions(broken.replace('"${missing[@]}"', '${missing[@]+"${missing[@]}"}')) == []
    assert unsafe_expansions('DEPLOYMENTS=(a b)\nfor d in "${DEPLOYMENTS[@]}"; do :; done\n') == []


# GNU sed accepts commands after q, or before } with no ;, on one line; BSD sed does not.
SED_PROGRAM = re.compile(r"\bsed\b[^\n|]*?'([^'\n]*)'")
GNU_ONLY = re.compile(r"\bq;|[^;\s{]\}")


def gnu_only_sed(text: str) -> list[str]:
    return [program for program in SED_PROGRAM.findall(text) if GNU_ONLY.search(program)]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_sed_program_that_bsd_sed_refuses(script):
    assert gnu_only_sed(script.read_text()) == []


def test_the_sed_rule_catches_what_broke_the_usage_text():
    assert gnu_only_sed("sed -n '2,/^set -euo/{/^set -euo/d;s/^# //p}' file")
    assert gnu_only_sed("sed -n '/^apiVersion/q;s/^# //p' file")
    assert not gnu_only_sed("sed -n 's|^pod/\\(x\\)$|\\1|p'")
    assert not gnu_only_sed("sed -e '/a/{' -e 's/b/c/;}'")


def test_the_image_the_script_replaces_is_the_one_the_manifests_name():
    script = (ROOT / "scripts" / "kind.sh").read_text()
    (named,) = re.findall(r'^MANIFEST_IMAGE="([^"]+)"', script, re.M)
    images = {
        line.split("image:", 1)[1].strip()
        for path in (ROOT / "k8s" / "base").glob("*-deployment.yaml")
        for line in path.read_text().splitlines()
        if line.strip().startswith("image:")
    }
    assert images == {named}


# -- the load generator's verbs -------------------------------------------------------------------


def run_kind(tmp_path, *arguments: str, tools: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """scripts/kind.sh with a PATH of the basic utilities and the named tools (kubectl: the venv's),
    and a kubeconfig with no cluster in it."""
    directory = tmp_path / "bin"
    directory.mkdir(exist_ok=True)
    for tool in ("bash", "sed", "awk", "grep", "head", "basename", "dirname", "cat", "paste", "printf", *tools):
        found = str(KUBECTL) if tool == "kubectl" else shutil.which(tool)
        if found and not (directory / tool).exists():
            (directory / tool).symlink_to(found)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "kind.sh"), *arguments],
        env={"PATH": str(directory), "HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("verb", ["load-start", "load-stop"])
def test_the_load_verbs_without_kubectl_say_how_to_install_it(tmp_path, verb):
    result = run_kind(tmp_path, verb)
    assert result.returncode == 1
    assert result.stderr.startswith("error: kubectl is not installed. Install kubectl")


@needs_kubectl
@pytest.mark.parametrize("verb", ["load-start", "load-stop"])
def test_the_load_verbs_need_a_cluster(tmp_path, verb):
    result = run_kind(tmp_path, verb, tools=("kubectl",))
    assert result.returncode == 1
    assert "run scripts/kind.sh up first" in result.stderr


def test_the_usage_names_the_load_verbs_and_make_runs_them(tmp_path):
    usage = run_kind(tmp_path, "no-such-verb").stderr
    assert "scripts/kind.sh load-start" in usage and "scripts/kind.sh load-stop" in usage
    makefile = (ROOT / "Makefile").read_text()
    assert "kind-load: ## " in makefile and "\tscripts/kind.sh load-start\n" in makefile
    assert "kind-load-stop: ## " in makefile and "\tscripts/kind.sh load-stop\n" in makefile


def test_the_script_applies_the_component_the_checks_read():
    script = (ROOT / "scripts" / "kind.sh").read_text()
    (directory,) = re.findall(r'^LOADGEN="([^"]+)"', script, re.M)
    assert load_repository(ROOT).components["loadgen"][0].source.startswith(directory + "/")
