"""Schemathesis against the real services (gunicorn with the production config), from the OpenAPI
document each serves at /openapi.json: no 5xx, every answer as the document says (status, content
type, schema), every schema-violating request refused with a 4xx JSON error in Spanish."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.reliability.support import record, sized
from tests.support import CALCULATOR_APP, GATEWAY_APP, get, scrape

pytestmark = pytest.mark.processes

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("st")
# Per operation and phase: the quick run sends hundreds of requests in all. The full one also
# gives each service a time budget, within which the fuzzing phase keeps drawing new cases
# (a maximum of examples alone stops at about 1,200 requests: the API has few operations).
MAX_EXAMPLES = sized(60, 600)
TIME_BUDGET = sized([], ["--max-time", "150"])
SEED = int(os.environ.get("RELIABILITY_SEED", "20261126"))


@pytest.fixture(scope="module")
def services(start_service):
    v1 = start_service("fuzz-calculator-v1", CALCULATOR_APP)
    v2 = start_service("fuzz-calculator-v2", CALCULATOR_APP, {"CALCULATOR_VERSION": "v2"})
    gateway = start_service("fuzz-gateway", GATEWAY_APP, {"CALCULATOR_URL": f"{v2.url}/calcular"})
    return {"calculator-v1": v1, "calculator-v2": v2, "gateway": gateway}


def interactions(report_dir: Path) -> list[dict]:
    """Every request schemathesis sent and the answer it got, from its NDJSON report."""
    found = []
    for path in report_dir.glob("*.ndjson"):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if "ScenarioFinished" in event:
                recorder = event["ScenarioFinished"].get("recorder") or {}
                found += [i for i in (recorder.get("interactions") or {}).values() if i.get("response")]
    return found


def server_errors(service) -> int:
    return sum(
        int(value)
        for (name, labels), value in scrape(service).items()
        if name == "http_server_requests_total" and dict(labels)["status"].startswith("5")
    )


def body_of(response: dict) -> bytes:
    content = response.get("content") or {}
    if "$base64" in content:
        return base64.b64decode(content["$base64"])
    return (content.get("string") or "").encode()


@pytest.mark.parametrize("name", ["calculator-v1", "calculator-v2", "gateway"])
def test_schemathesis_finds_no_server_error_and_no_answer_unlike_the_document(services, name, tmp_path):
    service = services[name]
    status, _, document = get(f"{service.url}/openapi.json")
    assert status == 200 and json.loads(document)["openapi"] == "3.1.0"
    command = [
        str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{service.url}/openapi.json",
        "--checks", "all", "--exclude-checks", "positive_data_acceptance", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--report", "ndjson", "--report-dir", str(tmp_path), "--no-color", "--max-failures", "10",
        "--request-timeout", "10", *TIME_BUDGET,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=sized(600, 3600))
    sent = interactions(tmp_path)
    statuses = Counter(i["response"]["status_code"] for i in sent)
    refused = [i for i in sent if 400 <= i["response"]["status_code"] < 500]
    not_json = [
        i for i in refused
        if not i["response"]["headers"].get("content-type", [""])[0].startswith("application/json")
        or not isinstance(json.loads(body_of(i["response"])).get("error"), str)
    ]
    record(f"schemathesis-{name}", requests=len(sent), statuses=dict(sorted(statuses.items())), seed=SEED)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert len(sent) >= sized(200, 1_700)
    assert not [s for s in statuses if s >= 500]
    assert server_errors(service) == 0
    assert not_json == [], not_json[:3]
