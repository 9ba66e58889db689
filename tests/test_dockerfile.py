"""The Dockerfile at the root: hadolint-clean, non-root, no debug server, a tight build context."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HADOLINT = Path(sys.executable).parent / "hadolint"


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True)


def final_stage(text: str) -> str:
    return re.split(r"^FROM ", text, flags=re.MULTILINE)[-1]


def runtime_user(text: str) -> str:
    users = re.findall(r"^USER\s+(\S+)", final_stage(text), re.MULTILINE)
    return users[-1] if users else "root"


def is_safe_user(user: str) -> bool:
    """A numeric UID (Kubernetes' runAsNonRoot needs one) that is neither root nor Istio's 1337, group 0."""
    uid, _, gid = user.partition(":")
    return uid.isdigit() and int(uid) not in (0, 1337) and gid == "0"


def test_hadolint_finds_nothing():
    result = hadolint(ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_broken_dockerfile(tmp_path):
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:latest\nRUN apt-get install curl\nRUN cd /app && pip install flask\n")
    result = hadolint(broken)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3013"):
        assert rule in result.stdout


def test_runs_as_a_non_root_user_that_is_not_istios():
    assert is_safe_user(runtime_user((ROOT / "Dockerfile").read_text()))


@pytest.mark.parametrize(
    "text", ["FROM x\nUSER root\n", "FROM x\nUSER 1337:0\n", "FROM x\n", "FROM x\nUSER 10001\n", "FROM a\nUSER 10001:0\nFROM b\n"]
)
def test_user_check_catches_root_istio_and_missing_group(text):
    assert not is_safe_user(runtime_user(text))


def test_no_build_tools_or_sources_in_the_final_stage():
    stage = final_stage((ROOT / "Dockerfile").read_text())
    assert "COPY --from=build /opt/venv /opt/venv" in stage
    assert not re.search(r"apt-get|gcc|build-essential|^COPY (calculator|gateway|servicekit)", stage, re.MULTILINE)


def test_build_context_is_an_allowlist():
    lines = [l for l in (ROOT / ".dockerignore").read_text().splitlines() if l and not l.startswith("#")]
    assert lines[0] == "*"
    assert "!.git" not in lines and "!.venv" not in lines


def test_no_flask_debug_server_anywhere():
    sources = [p for d in ("calculator", "gateway", "servicekit") for p in (ROOT / d).rglob("*.py")]
    for path in sources:
        text = path.read_text()
        assert "debug=True" not in text and ".run(" not in text, path
