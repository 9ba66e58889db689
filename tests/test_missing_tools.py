"""tests/tools.py: a test that lacks a tool or a privilege is skipped, and fails under CI naming it."""

from __future__ import annotations

import re

import pytest

from tests import tools
from tests.support import ROOT

TINY_SUITE = """
import pytest

from tests.tools import needs, require


@needs("nosuchtool", None, "apt-get install nosuchtool")
def test_marked():
    pass


@pytest.fixture(scope="module")
def other():
    return require("othertool", None, "pip install othertool")


def test_through_a_fixture(other):
    pass


def test_also_through_the_fixture(other):
    pass


@needs("python", "/usr/bin/python3", "never shown")
def test_present():
    pass
"""


def run_tiny_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makepyfile(test_tiny=TINY_SUITE)
    # tests.tools is imported already (by tests/conftest.py): no assertion rewriting to warn about.
    return pytester.runpytest_inprocess("-p", "tests.tools", "-rA", "-W", "ignore::pytest.PytestAssertRewriteWarning")


def test_under_ci_a_missing_tool_fails_the_run_naming_what_to_install(pytester, monkeypatch):
    result = run_tiny_suite(pytester, monkeypatch, "true")
    # A need found missing before the test runs is a failed setup: pytest counts it as an error.
    result.assert_outcomes(passed=1, errors=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*nosuchtool is missing, and under CI=true a check that cannot run fails rather than skip."
            " To get nosuchtool: apt-get install nosuchtool*",
            "*othertool is missing, and under CI=true*To get othertool: pip install othertool*",
        ]
    )
    # A module-scoped fixture's need fails every test that uses it, not only the first.
    result.stdout.fnmatch_lines(
        ["ERROR test_tiny.py::test_through_a_fixture - othertool*", "ERROR test_tiny.py::test_also_through_the_fixture - othertool*"]
    )


def test_out_of_ci_a_missing_tool_is_a_skip_that_says_how_to_get_it(pytester, monkeypatch):
    result = run_tiny_suite(pytester, monkeypatch, None)
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*SKIPPED*nosuchtool is missing: apt-get install nosuchtool*"])


@pytest.mark.parametrize("value", ["", "0", "false", "False"])
def test_ci_set_to_false_is_not_ci(pytester, monkeypatch, value):
    result = run_tiny_suite(pytester, monkeypatch, value)
    result.assert_outcomes(passed=1, skipped=3)


def test_the_suite_runs_the_hook(request):
    """tests/conftest.py installs it: the mechanism above is the one `make test` uses."""
    hook = request.config.pluginmanager.hook
    assert any(impl.function is tools.pytest_runtest_makereport for impl in hook.pytest_runtest_makereport.get_hookimpls())
    assert any(impl.function is tools.pytest_runtest_setup for impl in hook.pytest_runtest_setup.get_hookimpls())


# Skips that are not tools.needs/require, and kubectl looked up on PATH or called by bare name.
OTHER_WAYS = re.compile(r"pytest\.skip\(|\.skipif\(|importorskip\(|pytest\.xfail\(|mark\.xfail\b")
KUBECTL_ON_PATH = re.compile(r"""which\(\s*["']kubectl|\[\s*["']kubectl["']""")


def offending(text: str) -> list[tuple[int, str]]:
    return [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), 1)
        if OTHER_WAYS.search(line) or KUBECTL_ON_PATH.search(line)
    ]


def test_no_test_skips_another_way():
    """Every skip for a missing tool or privilege goes through tests/tools.py, so CI can fail it;
    and every kubectl is the venv's, never one found on PATH."""
    found = [
        (path.relative_to(ROOT).as_posix(), number, line)
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path not in (ROOT / "tests/tools.py", ROOT / "tests/test_missing_tools.py")
        for number, line in offending(path.read_text())
    ]
    assert found == []


def test_the_guard_above_sees_a_skip():
    # Its control: each of these lines is refused.
    lines = [
        'pytestmark = pytest.mark.skipif(shutil.which("hey") is None, reason="x")',
        '    pytest.skip("no chromium")',
        'kubectl = shutil.which("kubectl")',
        'subprocess.run(["kubectl", "kustomize", directory])',
        'prometheus = pytest.importorskip("prometheus_client")',
    ]
    assert [number for number, _ in offending("\n".join(lines))] == [1, 2, 3, 4, 5]
    assert offending('subprocess.run([str(KUBECTL), "kustomize"])\n@needs_kubectl') == []
