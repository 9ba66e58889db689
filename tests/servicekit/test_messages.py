"""servicekit.messages is every Spanish message of the API: README.md's error tables document
exactly its messages with their statuses, and the ingress's local replies are its INGRESS."""

from __future__ import annotations

import re
import string

from calculator import faults
from calculator.arithmetic import INT64_MAX, INT64_MIN
from calculator.config import CalculatorSettings
from calculator.jsondecode import MAX_DEPTH
from localmesh.loader import load_kustomization
from localmesh.translate.envoy_filters import parse_envoy_filter
from servicekit import messages
from tests.support import ROOT

MESH_HEADING = "#### Errors the mesh makes"
# Values a message names that come from the code: the README shows them filled in.
FILLED = {"low": INT64_MIN, "high": INT64_MAX, "depth": MAX_DEPTH, "limit_max": CalculatorSettings.max_results_limit}
# Values a message names that come from the request: the README shows an example.
EXAMPLE = "[^']+"


def error_rows(markdown: str) -> set[tuple[int, str]]:
    """(status, message) of every row of the ``| status | when | message |`` tables in markdown.

    A row names its statuses and its messages (in backquotes, last column): paired in order when
    they are as many, else each message with each status.
    """
    rows: set[tuple[int, str]] = set()
    in_table = False
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if cells[:2] == ["status", "when"]:
            in_table = True
            continue
        if not cells:
            in_table = False
        if not in_table or set(cells[0]) <= set("-"):
            continue
        statuses = [int(s) for s in cells[0].split(",")]
        texts = re.findall(r"`([^`]+)`", cells[-1])
        assert texts, f"a row with no message in backquotes: {line}"
        if len(texts) == len(statuses):
            rows.update(zip(statuses, texts))
        else:
            assert len(texts) == 1 or len(statuses) == 1, f"statuses and messages do not pair: {line}"
            rows.update((status, text) for status in statuses for text in texts)
    return rows


def pattern(template: str) -> re.Pattern[str]:
    """The texts a template gives: values from the code filled in, values from a request any."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is not None:
            parts.append(re.escape(str(FILLED[name])) if name in FILLED else EXAMPLE)
    return re.compile("".join(parts))


def mismatches(documented: set[tuple[int, str]], catalogue: dict[str, tuple[int, ...]]) -> list[str]:
    """What the documentation and the catalogue (template -> statuses) do not share."""
    expected = {(status, template) for template, statuses in catalogue.items() for status in statuses}
    found = []
    for status, template in sorted(expected):
        if not any(s == status and pattern(template).fullmatch(text) for s, text in documented):
            found.append(f"not documented: {status} {template!r}")
    for status, text in sorted(documented):
        if not any(s == status and pattern(template).fullmatch(text) for s, template in expected):
            found.append(f"not in servicekit.messages: {status} {text!r}")
    return found


def by_message(*tables: dict[int, str], extra: dict[str, tuple[int, ...]] | None = None) -> dict[str, tuple[int, ...]]:
    catalogue: dict[str, set[int]] = {}
    for table in tables:
        for status, text in table.items():
            catalogue.setdefault(text, set()).add(status)
    for text, statuses in (extra or {}).items():
        catalogue.setdefault(text, set()).update(statuses)
    return {text: tuple(sorted(statuses)) for text, statuses in catalogue.items()}


SERVICES = by_message(messages.HTTP, messages.GUNICORN, extra=messages.SERVICES)
INGRESS = by_message(messages.INGRESS)


def readme_sections() -> tuple[str, str]:
    """The API's tables and the mesh's, from README.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    api = readme[readme.index("## The API"):]
    services, _, rest = api.partition(MESH_HEADING)
    mesh = rest.split("\n#### ", 1)[0]
    return services, mesh


def test_the_readme_documents_every_message_of_the_services_with_its_status():
    services, _ = readme_sections()
    assert mismatches(error_rows(services), SERVICES) == []


def test_the_readme_documents_every_message_of_the_ingress_with_its_status():
    _, mesh = readme_sections()
    assert mismatches(error_rows(mesh), INGRESS) == []


def test_the_ingress_answers_with_the_messages_of_the_module():
    (resource,) = [r for r in load_kustomization(ROOT / "istio" / "ingress", ROOT) if r.kind == "EnvoyFilter"]
    assert parse_envoy_filter(resource).local_replies == messages.INGRESS


def test_the_fault_statuses_are_the_fault_switchs():
    assert messages.SERVICES[messages.INJECTED_FAULT] == faults.STATUSES


def test_every_message_is_spanish_text_with_no_stray_placeholder():
    for template in [*SERVICES, *INGRESS]:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        assert names <= {*FILLED, "field", "key"}, template
        assert template[0].isupper() and not template.endswith("."), template


BROKEN_TABLES = {
    "a message reworded": ("| 400 | division by zero | `No se puede dividir entre cero` |", "not in servicekit.messages"),
    "a wrong status": ("| 422 | division by zero | `No se puede dividir por cero` |", "not in servicekit.messages"),
    "a wrong filled value": (
        "| 400 | deep | `El JSON anida más de 33 niveles de listas u objetos` |", "not in servicekit.messages"
    ),
}


def test_the_check_finds_a_reworded_message_a_wrong_status_and_a_missing_row():
    services, _ = readme_sections()
    division = "| 400 | division by zero | `No se puede dividir por cero` |"
    assert division in services
    for name, (row, complaint) in BROKEN_TABLES.items():
        found = mismatches(error_rows(services.replace(division, row)), SERVICES)
        assert any(m.startswith(complaint) for m in found), name
        assert "not documented: 400 'No se puede dividir por cero'" in found, name
    missing = mismatches(error_rows(services.replace(division + "\n", "")), SERVICES)
    assert missing == ["not documented: 400 'No se puede dividir por cero'"]


def test_the_table_reader_pairs_statuses_with_messages():
    table = "\n".join([
        "| status | when | message |",
        "|---|---|---|",
        "| 404, 405 | x | `a`, `b` |",
        "| 502, 503 | `CALCULATOR_URL` down | `c` |",
        "| 400 | y | `d` / `e` |",
        "",
        "| 999 | not a table of errors | `f` |",
    ])
    assert error_rows(table) == {(404, "a"), (405, "b"), (502, "c"), (503, "c"), (400, "d"), (400, "e")}
