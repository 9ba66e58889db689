"""A copy of the repository's manifests in tmp_path, to break one thing at a time."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from manifestcheck.loading import Repository, SafeLoader, load_repository
from manifestcheck.model import Finding

REPO_ROOT = Path(__file__).resolve().parents[2]
SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
COPIED = ("k8s", "istio", "dashboards", "scripts", ".github")


class RepoCopy:
    def __init__(self, root: Path):
        self.root = root

    def path(self, relative: str) -> Path:
        return self.root / relative

    def edit(self, relative: str, change: Callable[[Any], object], index: int = 0) -> None:
        """Change one YAML document of a file in place (what ``change`` returns is ignored)."""
        path = self.path(relative)
        documents = [d for d in yaml.load_all(path.read_text(), Loader=SafeLoader) if d is not None]
        change(documents[index])
        path.write_text(yaml.dump_all(documents, Dumper=SafeDumper, sort_keys=False))

    def edit_json(self, relative: str, change: Callable[[Any], Any]) -> None:
        path = self.path(relative)
        document = json.loads(path.read_text())
        change(document)
        path.write_text(json.dumps(document, indent=2))

    def write(self, relative: str, text: str) -> None:
        path = self.path(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def load(self) -> Repository:
        return load_repository(self.root)


@pytest.fixture
def repo_copy(tmp_path) -> RepoCopy:
    for name in COPIED:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
    return RepoCopy(tmp_path)


@pytest.fixture(scope="session")
def repository() -> Repository:
    return load_repository(REPO_ROOT)


def of_check(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def container(document: dict, index: int = 0) -> dict:
    return document["spec"]["template"]["spec"]["containers"][index]


def env_of(document: dict, name: str, index: int = 0) -> dict:
    return next(e for e in container(document, index)["env"] if e["name"] == name)
