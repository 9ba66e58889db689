"""`make up` installs the runtime and the mesh extra only: everything the running demo imports must
come from those, not from the test tools that `make test` adds."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What `make up`, `make demo` and the images run (manifestcheck and bench are development tools).
RUNTIME_PACKAGES = ("calculator", "gateway", "servicekit", "localmesh", "scenarios", "slo")


def top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def distribution_name(requirement: str) -> str:
    return re.split(r"[=<>!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def outside_imports(allowed: set[str]) -> dict[str, set[str]]:
    providers = packages_distributions()
    outside = {}
    for package in RUNTIME_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for name in top_level_imports(path):
                if name in sys.stdlib_module_names or name in RUNTIME_PACKAGES:
                    continue
                distributions = {d.lower().replace("_", "-") for d in providers.get(name, [name])}
                # A name several distributions provide (opentelemetry) is fine when one of them is allowed.
                if not distributions & allowed and not _pulled_in(distributions, allowed):
                    outside.setdefault(f"{path.relative_to(ROOT)}", set()).add(name)
    return outside


def runtime_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {distribution_name(r) for r in project["dependencies"] + project["optional-dependencies"]["mesh"]}


def test_the_running_demo_imports_only_the_runtime_and_mesh_dependencies():
    assert outside_imports(runtime_distributions()) == {}


def test_an_import_from_the_test_tools_is_caught():
    # Without the mesh extra, the local mesh's YAML reading is outside what would be installed.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    without_mesh = {distribution_name(r) for r in project["dependencies"]}
    assert any("yaml" in names for names in outside_imports(without_mesh).values())


def _pulled_in(distributions: set[str], allowed: set[str]) -> bool:
    """A dependency of an allowed distribution (flask brings werkzeug, gunicorn brings packaging...)."""
    from importlib.metadata import PackageNotFoundError, requires

    reached, frontier = set(), set(allowed)
    while frontier:
        name = frontier.pop()
        reached.add(name)
        try:
            needed = requires(name) or []
        except PackageNotFoundError:  # a dependency for another platform or Python
            continue
        for requirement in needed:
            if "extra ==" in requirement:
                continue
            dependency = distribution_name(requirement)
            if dependency not in reached:
                frontier.add(dependency)
    return bool(distributions & reached)
