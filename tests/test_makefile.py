"""`make help` lists every target a person can call, each with what it does."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.tools import needs

ROOT = Path(__file__).resolve().parents[1]
MAKEFILE = (ROOT / "Makefile").read_text()


def phony_targets(text: str) -> set[str]:
    return {name for line in re.findall(r"^\.PHONY:(.*)$", text, re.M) for name in line.split()}


def described_targets(text: str) -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):[^\n]*## \S", text, re.M))


def test_every_target_says_what_it_does():
    assert phony_targets(MAKEFILE) - described_targets(MAKEFILE) == set()


def test_a_target_without_a_description_is_caught():
    broken = MAKEFILE.replace("load: $(RUN_INSTALLED) ##", "load: $(RUN_INSTALLED) #")
    assert phony_targets(broken) - described_targets(broken) == {"load"}


@needs("make", shutil.which("make"), "apt-get install make (.ci/run installs it)")
def test_make_help_lists_them():
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30)
    names = {line.split()[1] for line in listed.stdout.splitlines()}
    assert names == phony_targets(MAKEFILE)
    # Plain `make` shows the list too (help is the first target).
    assert subprocess.run(["make", "-s"], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout == listed.stdout
