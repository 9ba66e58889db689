"""The gateway's page in Debian's headless chromium: submit the form, see the answer."""

import shutil

import pytest

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


@pytest.fixture(scope="module")
def browser():
    require("chromium", CHROMIUM, APT.format("chromium"))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_the_form_shows_decimal_hex_and_version_and_tallies_versions(browser, stack):
    page = browser.new_page()
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


def test_the_page_shows_a_spanish_error(browser, stack):
    page = browser.new_page()
    page.goto(f"{stack['gateway'].url}/")
    page.fill("#numero2", "0")
    page.select_option("#operacion", "dividir")
    page.click("#calcular")
    page.wait_for_selector("#error:not([hidden])")
    assert "No se puede dividir por cero" in page.text_content("#error")
    assert page.is_hidden("#respuesta")
