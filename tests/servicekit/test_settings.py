import pytest

from calculator.config import CalculatorSettings
from gateway.config import GatewaySettings
from servicekit.settings import SettingsError, env_bool, env_float, env_int


def test_defaults_work_with_an_empty_environment():
    assert CalculatorSettings.from_env({}).version == "v1"
    assert GatewaySettings.from_env({}).calculator_url == "http://calculator/calcular"


@pytest.mark.parametrize(
    "reader, raw",
    [
        (lambda e: env_bool(e, "X", False), "maybe"),
        (lambda e: env_int(e, "X", 1, 0, 10), "11"),
        (lambda e: env_int(e, "X", 1), "1.5"),
        (lambda e: env_float(e, "X", 0.5, 0, 1), "2"),
        (lambda e: env_float(e, "X", 0.5), "nan"),
        (lambda e: env_float(e, "X", 0.5), "abc"),
    ],
)
def test_a_bad_value_fails_naming_the_variable(reader, raw):
    with pytest.raises(SettingsError, match="X="):
        reader({"X": raw})


def test_unknown_calculator_version_is_refused_at_start():
    with pytest.raises(SettingsError, match="CALCULATOR_VERSION"):
        CalculatorSettings.from_env({"CALCULATOR_VERSION": "v3"})


def test_results_file_follows_data_dir_unless_set():
    assert str(CalculatorSettings.from_env({"DATA_DIR": "/data"}).results_file) == "/data/resultados.txt"
    settings = CalculatorSettings.from_env({"DATA_DIR": "/data", "RESULTS_FILE": "/x/r.txt"})
    assert str(settings.results_file) == "/x/r.txt"


def test_gateway_forward_headers_are_parsed_lowercase():
    settings = GatewaySettings.from_env({"FORWARD_HEADERS": "X-Request-Id, End-User ,"})
    assert settings.forward_headers == ("x-request-id", "end-user")
