"""Hundreds of concurrent requests through both services: exactly one whole line each."""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from calculator.results import parse_line
from tests.support import CALCULATOR_APP, GATEWAY_APP, get, post_json

pytestmark = pytest.mark.processes


def test_concurrent_requests_write_exactly_one_well_formed_line_each(start_service):
    calculator = start_service("calc-concurrency", CALCULATOR_APP, {"GUNICORN_THREADS": "16"})
    gateway = start_service("gw-concurrency", GATEWAY_APP, {"CALCULATOR_URL": f"{calculator.url}/calcular"})
    results = Path(calculator.spec.env["DATA_DIR"]) / "resultados.txt"
    numbers = range(1000, 1400)

    def send(n):
        return post_json(f"{gateway.url}/calcular", {"operacion": "multiplicar", "numero1": n, "numero2": -3})

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(send, numbers))

    assert [status for status, _, _ in answers] == [200] * len(numbers)
    entries = [parse_line(line) for line in results.read_text().splitlines()]
    assert None not in entries
    assert sorted(e.resultado for e in entries) == sorted(-3 * n for n in numbers)
    assert all(e.resultado_hexa == hex(e.resultado) for e in entries)

    status, _, body = get(f"{calculator.url}/resultados?limite=400")
    assert status == 200
    served = [(e["resultado"], e["resultado_hexa"]) for e in json.loads(body)["resultados"]]
    assert served == [(e.resultado, e.resultado_hexa) for e in entries]
