"""The calculator's HTTP contract through Flask's test client."""

import json

import pytest

from calculator.arithmetic import MSG_NOT_A_NUMBER, MSG_OPERAND_OUT_OF_RANGE
from calculator.jsondecode import MSG_TOO_DEEP, duplicate_key_message

SEED_CASES = [
    ({"operacion": "sumar", "numero1": 2, "numero2": 3}, 5, "0x5"),
    ({"operacion": "restar", "numero1": 2, "numero2": 9}, -7, "-0x7"),
    ({"operacion": "multiplicar", "numero1": 6, "numero2": 7}, 42, "0x2a"),
    ({"operacion": "dividir", "numero1": 7, "numero2": 2}, 3, "0x3"),
    ({"operacion": "dividir", "numero1": -7, "numero2": 2}, -3, "-0x3"),
    ({"operacion": "sumar", "numero1": 2.5, "numero2": 2.5}, 5, "0x5"),
]


@pytest.mark.parametrize("body, result, result_hex", SEED_CASES)
def test_seed_cases(calculator_client, body, result, result_hex):
    response = calculator_client.post("/calcular", json=body)
    assert response.status_code == 200
    assert response.get_json() == {"resultado": result, "resultado_hexa": result_hex, "version": "v1"}
    assert response.headers["X-Calculator-Version"] == "v1"


def test_every_success_appends_the_seed_line(calculator_client, tmp_path):
    for body, _, _ in SEED_CASES:
        calculator_client.post("/calcular", json=body)
    lines = (tmp_path / "resultados.txt").read_text().splitlines()
    assert lines == [f"Decimal: {r}, Hexadecimal: {h}" for _, r, h in SEED_CASES]


BAD_BODIES = [
    # (raw body, status, message)
    (b'{"operacion": "dividir", "numero1": 1, "numero2": 0}', 400, "No se puede dividir por cero"),
    (b'{"operacion": "raiz", "numero1": 1, "numero2": 0}', 400, "Operación no válida"),
    (b'{"operacion": "sumar", "numero1": "5", "numero2": 2}', 400, MSG_NOT_A_NUMBER),
    (b'{"operacion": "sumar", "numero1": true, "numero2": 2}', 400, MSG_NOT_A_NUMBER),
    (b'{"operacion": "sumar", "numero1": NaN, "numero2": 2}', 400, MSG_OPERAND_OUT_OF_RANGE),
    (b'{"operacion": "sumar", "numero1": Infinity, "numero2": 2}', 400, MSG_OPERAND_OUT_OF_RANGE),
    (b'{"operacion": "sumar", "numero1": -Infinity, "numero2": 2}', 400, MSG_OPERAND_OUT_OF_RANGE),
    (b'{"operacion": "sumar", "numero1": 1e400, "numero2": 2}', 400, MSG_OPERAND_OUT_OF_RANGE),
    (b'{"operacion": "sumar", "numero1": 9223372036854775808, "numero2": 0}', 400, MSG_OPERAND_OUT_OF_RANGE),
    (b'{"operacion": "sumar", "numero1": ' + b"9" * 900 + b', "numero2": 0}', 400, MSG_OPERAND_OUT_OF_RANGE),
    (
        b'{"operacion": "multiplicar", "numero1": 9223372036854775807, "numero2": 2}',
        400,
        "El resultado está fuera del rango de 64 bits con signo (-9223372036854775808 a 9223372036854775807)",
    ),
    (b'{"operacion": "sumar", "numero1": 1}', 400, "Falta el campo obligatorio 'numero2'"),
    (b"[1, 2]", 400, "El cuerpo debe ser un objeto JSON"),
    (b"null", 400, "El cuerpo debe ser un objeto JSON"),
    (b"{", 400, "El cuerpo no es JSON válido"),
    (b"", 400, "El cuerpo no es JSON válido"),
    (b"\xff\xfe", 400, "El cuerpo no es JSON válido"),
    (b'{"x": "' + b"a" * 2000 + b'"}', 413, "El cuerpo de la solicitud es demasiado grande"),
    # json.loads recursed once per level: a RecursionError, a 500, before the depth was bounded.
    (b"[" * 1000, 400, MSG_TOO_DEEP),
    (b'{"a":' * 200, 400, MSG_TOO_DEEP),
    # The last value won: a "dividir" that was summed.
    (
        b'{"operacion": "dividir", "operacion": "sumar", "numero1": 1, "numero2": 2}',
        400,
        duplicate_key_message("operacion"),
    ),
]


@pytest.mark.parametrize("raw, status, message", BAD_BODIES)
def test_bad_input_gets_a_spanish_json_error(calculator_client, tmp_path, raw, status, message):
    response = calculator_client.post("/calcular", data=raw, content_type="application/json")
    assert response.status_code == status
    assert response.is_json
    assert response.get_json() == {"error": message}
    assert not (tmp_path / "resultados.txt").exists()  # nothing recorded for a refusal


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_not_declared_as_json_is_415(calculator_client, content_type):
    body = json.dumps({"operacion": "sumar", "numero1": 1, "numero2": 2})
    response = calculator_client.post("/calcular", data=body, content_type=content_type)
    assert response.status_code == 415
    assert "JSON" in response.get_json()["error"]


@pytest.mark.parametrize(
    "method, path, status",
    [("GET", "/calcular", 405), ("GET", "/no-existe", 404), ("DELETE", "/resultados", 405)],
)
def test_routing_errors_are_json_too(calculator_client, method, path, status):
    response = calculator_client.open(path, method=method)
    assert response.status_code == status
    assert set(response.get_json()) == {"error"}


def test_an_unexpected_exception_is_a_json_500_without_a_stack_trace(calculator_factory):
    app = calculator_factory()

    @app.get("/boom")
    def boom():
        raise RuntimeError("secreto interno")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.get_json() == {"error": "Error interno del servidor"}
    assert b"secreto" not in response.data and b"Traceback" not in response.data


def test_v2_answers_with_its_version_the_exact_quotient_and_modulo(calculator_factory):
    client = calculator_factory(version="v2").test_client()
    response = client.post("/calcular", json={"operacion": "dividir", "numero1": 7, "numero2": 2})
    assert response.get_json() == {
        "resultado": 3,
        "resultado_hexa": "0x3",
        "version": "v2",
        "resultado_exacto": 3.5,
    }
    assert response.headers["X-Calculator-Version"] == "v2"
    modulo = client.post("/calcular", json={"operacion": "modulo", "numero1": -7, "numero2": 3})
    assert modulo.get_json()["resultado"] == -1


def test_v1_refuses_the_v2_operation(calculator_client):
    response = calculator_client.post("/calcular", json={"operacion": "modulo", "numero1": 7, "numero2": 3})
    assert response.status_code == 400


def test_resultados_returns_the_last_entries(calculator_client):
    for n in range(15):
        calculator_client.post("/calcular", json={"operacion": "sumar", "numero1": n, "numero2": 0})
    body = calculator_client.get("/resultados?limite=3").get_json()
    assert body["resultados"] == [{"resultado": n, "resultado_hexa": hex(n)} for n in (12, 13, 14)]
    assert len(calculator_client.get("/resultados").get_json()["resultados"]) == 10


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1001", "1.5", "9" * 5000, "٣"])
def test_resultados_refuses_a_bad_limit(calculator_client, limit):
    response = calculator_client.get(f"/resultados?limite={limit}")
    assert response.status_code == 400
    assert "limite" in response.get_json()["error"]


def test_fault_knob_fails_requests_and_says_so(calculator_factory, tmp_path):
    client = calculator_factory(fault_failure_rate=1.0).test_client()
    response = client.post("/calcular", json={"operacion": "sumar", "numero1": 1, "numero2": 2})
    assert response.status_code == 503
    assert response.headers["X-Calculator-Fault"] == "failure"
    assert response.get_json()["fallo_inyectado"] is True
    assert not (tmp_path / "resultados.txt").exists()


def test_fault_knob_is_off_by_default(calculator_client):
    for _ in range(50):
        response = calculator_client.post("/calcular", json={"operacion": "sumar", "numero1": 1, "numero2": 2})
        assert response.status_code == 200
        assert "X-Calculator-Fault" not in response.headers


def test_operations_are_counted_by_operation_outcome_and_version(calculator_client):
    from prometheus_client.parser import text_string_to_metric_families

    calculator_client.post("/calcular", json={"operacion": "sumar", "numero1": 1, "numero2": 2})
    calculator_client.post("/calcular", json={"operacion": "dividir", "numero1": 1, "numero2": 0})
    calculator_client.post("/calcular", json={"operacion": "raiz", "numero1": 1, "numero2": 0})
    text = calculator_client.get("/metrics").get_data(as_text=True)
    samples = {
        (s.labels["operation"], s.labels["outcome"], s.labels["service_version"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "calculator_operations"
        for s in family.samples
    }
    assert samples == {
        ("sumar", "ok", "v1"): 1.0,
        ("dividir", "rejected", "v1"): 1.0,
        ("unknown", "rejected", "v1"): 1.0,
    }
