"""The gateway's page in Debian's headless chromium: submit the form, see the answer.

The first test also takes the README's screenshot of the page after a calculation: into the test's
temporary directory on every run, and into docs/page.png with ``UPDATE_SCREENSHOT=1``
(``UPDATE_SCREENSHOT=1 .venv/bin/python -m pytest tests/integration/test_page.py``).
"""

import os
import shutil
import struct

import pytest

from tests.support import ROOT
from tests.tools import APT, require

pytestmark = [pytest.mark.processes, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags for a closed network and a root user: no sandbox, no background calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = ROOT / "docs" / "page.png"
# Wide enough for the form on one line, small enough for a README: the screenshot is the full page.
VIEWPORT = {"width": 720, "height": 480}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, from its header chunk; ValueError if it is not one."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def browser():
    require("chromium", CHROMIUM, APT.format("chromium"))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_the_form_shows_decimal_hex_and_version_and_tallies_versions(browser, stack, tmp_path):
    page = browser.new_page(viewport=VIEWPORT)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{stack['gateway'].url}/")
    page.fill("#numero1", "-7")
    page.select_option("#operacion", "dividir")
    page.fill("#numero2", "2")
    page.click("#calcular")
    page.wait_for_selector("#respuesta:not([hidden])")
    assert page.text_content("#decimal") == "-3"
    assert page.text_content("#hexadecimal") == "-0x3"
    assert page.text_content("#version") == "v1"

    page.click("#calcular")
    page.wait_for_selector("#conteo tr[data-version='v1'] td:nth-child(2):text-is('2')")
    assert errors == []

    screenshot = page.screenshot(path=tmp_path / "page.png", full_page=True)
    width, height = png_size(screenshot)
    assert width == VIEWPORT["width"] and height >= VIEWPORT["height"] // 2
    assert (tmp_path / "page.png").read_bytes() == screenshot
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.write_bytes(screenshot)


def test_the_readme_shows_the_pages_screenshot():
    assert "](docs/page.png)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert png_size(SCREENSHOT.read_bytes())[0] == VIEWPORT["width"]


def test_a_file_that_is_not_a_png_is_refused():
    with pytest.raises(ValueError):
        png_size(b"GIF89a" + bytes(32))
    with pytest.raises(ValueError):
        png_size(b"")


def test_the_page_shows_a_spanish_error(browser, stack):
    page = browser.new_page()
    page.goto(f"{stack['gateway'].url}/")
    page.fill("#numero2", "0")
    page.select_option("#operacion", "dividir")
    page.click("#calcular")
    page.wait_for_selector("#error:not([hidden])")
    assert "No se puede dividir por cero" in page.text_content("#error")
    assert page.is_hidden("#respuesta")
