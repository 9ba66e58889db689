"""Fixtures shared by every test folder."""

import pytest

from calculator.app import create_app as create_calculator
from calculator.config import CalculatorSettings
from localmesh.processes import ServiceProcess, ServiceSpec, free_port
from servicekit.lifecycle import DrainFlag

# The in-memory span exporter, for the tests of spans.
from tests.inprocess import spans  # noqa: F401
from tests.support import CALCULATOR_APP, CAPTURED_HEADERS, GATEWAY_APP, OtlpReceiver

# A test that lacks a tool or a privilege is skipped, and fails under CI (tests/tools.py).
from tests.tools import pytest_configure, pytest_runtest_makereport, pytest_runtest_setup  # noqa: F401


@pytest.fixture
def calculator_factory(tmp_path):
    """Build a calculator app with its results file in tmp_path."""

    def build(**overrides):
        settings = CalculatorSettings(results_file=tmp_path / "resultados.txt", **overrides)
        return create_calculator(settings, environ={}, drain_flag=DrainFlag())

    return build


@pytest.fixture
def calculator_client(calculator_factory):
    return calculator_factory().test_client()


@pytest.fixture(scope="session")
def otlp_receiver():
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def start_service(tmp_path_factory):
    """Start a gunicorn service with the production config; all are stopped at the end."""
    started: list[ServiceProcess] = []
    log_dir = tmp_path_factory.mktemp("logs")

    def start(name: str, app: str, env: dict[str, str] | None = None, wait: bool = True) -> ServiceProcess:
        data_dir = tmp_path_factory.mktemp(f"data-{name}")
        base = {"DATA_DIR": str(data_dir), "SHUTDOWN_DRAIN_SECONDS": "0", "OTEL_BSP_SCHEDULE_DELAY": "100"}
        service = ServiceProcess(ServiceSpec(name, app, free_port(), {**base, **(env or {})}), log_dir)
        started.append(service)
        service.start()
        if wait:
            service.wait_ready()
        return service

    yield start
    for service in started:
        service.stop(timeout=10)


@pytest.fixture(scope="session")
def stack(start_service, otlp_receiver):
    """Calculator v1 and a gateway in front of it, both exporting traces to the receiver."""
    telemetry = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url}
    calculator = start_service(
        "calculator",
        CALCULATOR_APP,
        {**telemetry, "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": CAPTURED_HEADERS},
    )
    gateway = start_service(
        "gateway", GATEWAY_APP, {**telemetry, "CALCULATOR_URL": f"{calculator.url}/calcular"}
    )
    return {"calculator": calculator, "gateway": gateway}
