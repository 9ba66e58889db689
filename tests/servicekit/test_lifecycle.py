import multiprocessing

from servicekit.lifecycle import DrainFlag


def test_probes_answer_json(calculator_client):
    assert calculator_client.get("/healthz").get_json() == {"estado": "ok"}
    assert calculator_client.get("/readyz").status_code == 200


def test_readiness_fails_once_draining_while_liveness_holds(calculator_factory):
    flag = DrainFlag()
    app = calculator_factory()
    app.extensions["drain_flag"] = flag
    client = app.test_client()
    flag.set()
    assert client.get("/readyz").status_code == 503
    assert client.get("/readyz").get_json() == {"estado": "drenando"}
    assert client.get("/healthz").status_code == 200
    # and it still calculates: draining is not refusing work
    response = client.post("/calcular", json={"operacion": "sumar", "numero1": 1, "numero2": 1})
    assert response.status_code == 200


def _set_in_child(flag):
    flag.set()


def test_drain_flag_set_in_one_process_is_seen_by_another():
    flag = DrainFlag()
    child = multiprocessing.get_context("fork").Process(target=_set_in_child, args=(flag,))
    child.start()
    child.join(10)
    assert flag.is_set()
