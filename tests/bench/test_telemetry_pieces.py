"""bench.telemetry_pieces: the frozen hand-made telemetry still serves the calculator it is compared in."""

from bench.telemetry_pieces import handmade_app


def test_the_handmade_variant_answers_and_counts_like_the_shipped_one(tmp_path):
    client = handmade_app(tmp_path / "results.txt").test_client()
    answer = client.post("/calcular", json={"operacion": "sumar", "numero1": 2, "numero2": 3})
    assert answer.status_code == 200 and answer.get_json()["resultado"] == 5
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'http_server_requests_total{' in metrics and 'route="/calcular"' in metrics
