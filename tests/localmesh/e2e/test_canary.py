"""The canary: the VirtualService's weights and header route, as the gateway's sidecars apply them.

Each request goes client -> ingress Envoy -> gateway -> its sidecar Envoy -> a
calculator. The client reads the version from the answer; the sidecars' subset
clusters count what they sent where.
"""

import pytest

from tests.localmesh.e2e.support import assert_share, cluster_stat, load, policy, policy_of, versions
from tests.support import statuses

pytestmark = pytest.mark.processes


def subset_requests(mesh) -> dict[str, int]:
    return {subset: cluster_stat(mesh, subset, "upstream_rq_total") for subset in ("v1", "v2")}


def test_the_base_split_sends_a_tenth_to_v2(mesh):
    n = 1000  # 99.9% interval of a 10% share: 69 to 131 requests
    before = subset_requests(mesh)
    answers = load(mesh, n)
    after = subset_requests(mesh)

    assert statuses(answers) == {200: n}
    seen = versions(answers)
    print(f"base split: v2 answered {seen['v2']} of {n}")
    assert_share(seen["v2"], n, policy_of().split.weight_share("v2"), "answers from v2")
    assert seen["v1"] + seen["v2"] == n
    # The sidecars' own count agrees with what the clients saw, request for request.
    assert {s: after[s] - before[s] for s in after} == {"v1": seen["v1"], "v2": seen["v2"]}


def test_the_canary_header_sends_every_request_to_v2(mesh):
    n = 200
    before = subset_requests(mesh)
    answers = load(mesh, n, headers={"x-canary": "always"})
    after = subset_requests(mesh)

    assert statuses(answers) == {200: n}
    assert versions(answers) == {"v2": n}
    assert all(a.headers["x-calculator-version"] == "v2" for a in answers)
    assert {s: after[s] - before[s] for s in after} == {"v1": 0, "v2": n}


@pytest.mark.parametrize(
    "name, n",
    [("virtual-service-calculator-50-50", 400), ("virtual-service-calculator-100-0", 100), ("virtual-service-calculator-0-100", 100)],
)
def test_each_canary_stage_gives_its_share(mesh, name, n):
    v2_share = policy_of(name).split.weight_share("v2")
    with policy(mesh, name):
        before = subset_requests(mesh)
        answers = load(mesh, n)
        after = subset_requests(mesh)

    assert statuses(answers) == {200: n}
    seen = versions(answers)
    print(f"{name}: v2 answered {seen['v2']} of {n}")
    assert_share(seen["v2"], n, v2_share, f"{name}: answers from v2")
    assert {s: after[s] - before[s] for s in after} == {"v1": seen["v1"], "v2": seen["v2"]}
