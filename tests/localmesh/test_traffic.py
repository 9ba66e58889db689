"""The steady load's bounds and its live line (the load itself runs in tests/localmesh/e2e)."""

from collections import Counter

import pytest

from localmesh.traffic import SteadyLoad, status_line


def test_the_live_line_names_each_status_and_version():
    counts = Counter({(200, "v1"): 108, (200, "v2"): 11, (503, "v1"): 1, (0, "-"): 2})
    assert status_line(counts, 12.2) == "  12 s    122 sent  no answer - 2 · 200 v1 108 · 200 v2 11 · 503 v1 1"
    assert status_line(Counter(), 0) == "   0 s      0 sent  -"


@pytest.mark.parametrize("rate, seconds, message", [(0, 10, "RATE"), (501, 10, "RATE"), (10, 3601, "DURATION")])
def test_the_load_is_bounded(rate, seconds, message):
    with pytest.raises(ValueError, match=message):
        SteadyLoad("http://127.0.0.1:8080", rate, seconds)


def test_higher_rates_get_more_threads():
    assert len(SteadyLoad("http://127.0.0.1:8080", 10, 1)._threads) == 1
    assert len(SteadyLoad("http://127.0.0.1:8080", 100, 1)._threads) == 10
