"""The root Dockerfile, built with podman and run: the container answers /calcular, as 10001, read-only.

No Docker engine runs here and no container registry is reachable, so:
- the base image is a Debian bookworm (python3 3.11, like the official image)
  made with debootstrap from this machine's Debian mirror, imported into podman
  and passed as BASE_IMAGE; the Dockerfile's default stays the official
  python slim image for everyone else;
- podman builds as root with --isolation=chroot and runs with runc and explicit
  ulimits, which is what works in this sandbox.

The base is made once per Debian release and package list and kept, as a podman
image and as a tarball under /var/cache/meshcalc-image-test, so a reused
machine skips debootstrap (about a minute); from scratch it is made again.
Everything else the test makes (image, containers, volume) it removes.
Deselect with `-m "not image"`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.tools import APT, require

ROOT = Path(__file__).resolve().parents[1]
PODMAN = shutil.which("podman")
DEBOOTSTRAP = shutil.which("debootstrap") or (shutil.which("debootstrap", path="/usr/sbin:/sbin"))
CACHE_DIR = Path(os.environ.get("MESHCALC_IMAGE_CACHE", "/var/cache/meshcalc-image-test"))
DEBIAN_RELEASE = "bookworm"
# python3-venv for the Dockerfile's `python3 -m venv`; ca-certificates for pip's TLS.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# The sandbox refuses podman's defaults for these limits; any explicit value works.
ULIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
READY_DEADLINE_SECONDS = 60
SEED_REQUEST = {"operacion": "dividir", "numero1": 7, "numero2": 2}


def dockerfile_default_base() -> str:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    return match.group(1) if match else ""


def test_dockerfile_default_base_is_the_official_python_slim_image():
    # The local base below is for this machine only; users build FROM the official image.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", dockerfile_default_base())


# -- podman ------------------------------------------------------------------------------------------


def podman(*args: str, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([PODMAN, *args], capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


# -- the local base image ----------------------------------------------------------------------------


def debian_mirror() -> str:
    """The Debian archive this machine's apt uses (deb822 .sources or one-line .list)."""
    override = os.environ.get("MESHCALC_DEBIAN_MIRROR")
    if override:
        return override
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(.+)$", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and DEBIAN_RELEASE in suites.group(1).split():
                for uri in uris.group(1).split():
                    if uri.rstrip("/").endswith("/debian"):
                        return uri
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and not parts[1].startswith("["):
                if parts[1].rstrip("/").endswith("/debian") and parts[2] == DEBIAN_RELEASE:
                    return parts[1]
    return DEFAULT_MIRROR


def base_image_key() -> str:
    recipe = json.dumps({"release": DEBIAN_RELEASE, "packages": BASE_PACKAGES, "variant": "minbase", "trim": 1})
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def debootstrap_rootfs(target: Path) -> None:
    subprocess.run(
        [DEBOOTSTRAP, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", DEBIAN_RELEASE, str(target), debian_mirror()],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"},
    )
    # What an image needs no more: package caches and lists, docs, man pages, locales.
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
        path = target / leftover
        if path.is_dir():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                elif child.name != "lock":
                    child.unlink()


def ensure_base_image() -> str:
    """localhost/meshcalc-base:bookworm-<key>, from podman's store, the cache tarball, or debootstrap."""
    name = f"localhost/meshcalc-base:{DEBIAN_RELEASE}-{base_image_key()}"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"{DEBIAN_RELEASE}-{base_image_key()}.tar"
    # One maker at a time: two test runs must not debootstrap into one tarball.
    with open(CACHE_DIR / "base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image_exists(name):
            return name
        if not tarball.is_file():
            # Only when no base image is cached: a reused machine needs no debootstrap.
            require("debootstrap", DEBOOTSTRAP, APT.format("debootstrap"))
            with tempfile.TemporaryDirectory(dir="/var/tmp") as work:
                rootfs = Path(work) / "rootfs"
                debootstrap_rootfs(rootfs)
                partial = tarball.with_suffix(".partial")
                subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True, timeout=600)
                partial.rename(tarball)
        podman("import", "--change", "CMD [\"/bin/bash\"]", str(tarball), name)
    return name


# -- the built image and running containers -----------------------------------------------------------


def build_image(base: str, tag: str) -> None:
    arguments = [
        "build",
        "--isolation=chroot",
        # The build stage pip-installs from PyPI.
        "--network=host",
        # docker format keeps the Dockerfile's HEALTHCHECK, which OCI drops.
        "--format=docker",
        # Only the final image is kept, so removing it leaves nothing behind.
        "--layers=false",
        "--force-rm",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--tag",
        tag,
    ]
    if HOST_CA_BUNDLE.is_file():
        # This machine's CA bundle over the base's own, for the build's pip only
        # (Debian's pip reads this path): a TLS-intercepting proxy's CA is in it.
        arguments += ["--volume", f"{HOST_CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro"]
    podman(*arguments, str(ROOT), timeout=1200)


@contextlib.contextmanager
def container(image: str, name: str, *args: str, command: tuple[str, ...] = (), env: dict[str, str] | None = None):
    """A hardened container of ``image``, removed on exit."""
    environment = [f"--env={key}={value}" for key, value in (env or {}).items()]
    try:
        podman(
            "--runtime", "runc", "run", "--detach", f"--name={name}",
            *ULIMITS,
            "--read-only",
            "--tmpfs=/tmp:rw,nosuid,nodev,size=16m",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            # The image's own user (USER 10001:0), not overridden here.
            "--publish=127.0.0.1::8080",
            *environment,
            *args,
            image,
            *command,
        )
        yield name
    finally:
        podman("rm", "--force", "--time=0", name, check=False)


def published_port(name: str) -> int:
    output = podman("port", name, "8080/tcp").stdout.strip().splitlines()[0]
    host, _, port = output.rpartition(":")
    assert host == "127.0.0.1", output
    return int(port)


def request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def wait_ready(name: str, port: int) -> None:
    """Until /readyz answers 200; fails early with the logs if the container stops."""
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        if state != "running":
            pytest.fail(f"container {name} is {state}:\n{podman('logs', name, check=False).stderr}")
        try:
            status, body = request(port, "GET", "/readyz")
            if status == 200:
                return
            last = f"{status} {body}"
        except (OSError, http.client.HTTPException) as error:
            last = repr(error)
        time.sleep(0.1)  # between polls of the condition, bounded by the deadline
    pytest.fail(f"{name} not ready within {READY_DEADLINE_SECONDS}s: {last}\n{podman('logs', name, check=False).stderr}")


def exec_in(name: str, *command: str) -> subprocess.CompletedProcess:
    return podman("exec", name, *command, check=False)


# -- the test ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_image():
    require("podman", PODMAN, APT.format("podman runc"))
    # debootstrap and `podman build --isolation=chroot` run as root here.
    require("root", os.geteuid() == 0, "run the tests as root (the hosted CI runs .ci/run with sudo)")
    tag = f"localhost/meshcalc-imagetest:{uuid.uuid4().hex[:12]}"
    build_image(ensure_base_image(), tag)
    try:
        yield tag
    finally:
        podman("rmi", "--force", tag, check=False)


@pytest.fixture(scope="module")
def data_volume(built_image):
    name = f"meshcalc-imagetest-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", name)
    try:
        yield name
    finally:
        podman("volume", "rm", "--force", name, check=False)


@pytest.fixture(scope="module")
def calculator(built_image, data_volume):
    name = f"meshcalc-imagetest-calculator-{uuid.uuid4().hex[:8]}"
    with container(built_image, name, f"--volume={data_volume}:/data", env={"SHUTDOWN_DRAIN_SECONDS": "0"}):
        port = published_port(name)
        wait_ready(name, port)
        yield name, port


@pytest.mark.image
def test_calculator_container_answers_the_seed_request(calculator):
    name, port = calculator
    status, body = request(port, "POST", "/calcular", SEED_REQUEST)
    assert status == 200, body
    assert body == {"resultado": 3, "resultado_hexa": "0x3", "version": "v1"}
    # The line is in the volume before the answer leaves.
    assert exec_in(name, "cat", "/data/resultados.txt").stdout.splitlines()[-1] == "Decimal: 3, Hexadecimal: 0x3"


@pytest.mark.image
def test_container_runs_as_10001_in_group_0_on_a_read_only_root(calculator):
    name, _ = calculator
    assert exec_in(name, "id", "-u").stdout.strip() == "10001"
    assert exec_in(name, "id", "-g").stdout.strip() == "0"
    refused = exec_in(name, "touch", "/opt/venv/written")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr


@pytest.mark.image
def test_the_images_healthcheck_command_passes(built_image, calculator):
    name, _ = calculator
    healthcheck = json.loads(podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", built_image).stdout)
    kind, *command = healthcheck["Test"]
    assert kind == "CMD"
    result = exec_in(name, *command)
    assert result.returncode == 0, result.stderr


@pytest.mark.image
def test_gateway_container_calls_the_calculator_container(built_image, calculator):
    calculator_name, _ = calculator
    # The default podman network; the calculator's address on it, not a published port.
    address = podman("inspect", "--format", "{{.NetworkSettings.IPAddress}}", calculator_name).stdout.strip()
    assert address
    name = f"meshcalc-imagetest-gateway-{uuid.uuid4().hex[:8]}"
    gateway_command = ("gunicorn", "-c", "python:servicekit.gunicorn_conf", "gateway.app:create_app()")
    env = {"CALCULATOR_URL": f"http://{address}:8080/calcular", "SHUTDOWN_DRAIN_SECONDS": "0"}
    with container(built_image, name, command=gateway_command, env=env):
        port = published_port(name)
        wait_ready(name, port)
        status, body = request(port, "POST", "/calcular", SEED_REQUEST)
        assert status == 200, body
        assert body["resultado"] == 3 and body["version"] == "v1"
        # The calculator's 4xx pass through the gateway unchanged.
        status, body = request(port, "POST", "/calcular", {**SEED_REQUEST, "numero2": 0})
        assert (status, body) == (400, {"error": "No se puede dividir por cero"})
