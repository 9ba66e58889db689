"""VirtualService http rules -> Envoy routes: one expected fragment per field and per istiod default."""

from __future__ import annotations

import pytest

from tests.localmesh.translate.support import (
    CALC,
    GW,
    calculator_route,
    ingress,
    manifests,
    routes,
    sidecar,
    with_istio,
)

V1 = f"outbound|80|v1|{CALC}"
V2 = f"outbound|80|v2|{CALC}"
ALL = f"outbound|80||{CALC}"
DEFAULT_RETRY = {
    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
    "num_retries": 2,
    "retry_host_predicate": [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
            },
        }
    ],
    "host_selection_retry_max_attempts": 5,
}


def only_route(http_yaml: str) -> dict:
    (route,) = calculator_route(http_yaml)
    return route


# -- the canary of the demo ---------------------------------------------------------------------------


def test_canary_header_route_then_weighted_split():
    header, split = routes(sidecar(manifests()))
    assert header["name"] == "canary-header"
    assert header["match"] == {
        "prefix": "/",
        "case_sensitive": True,
        "headers": [{"name": "x-canary", "string_match": {"exact": "always"}}],
    }
    assert header["route"]["cluster"] == V2
    assert split["match"] == {"prefix": "/"}
    # total_weight never written: Envoy sums the weights.
    assert split["route"]["weighted_clusters"] == {"clusters": [{"name": V1, "weight": 90}, {"name": V2, "weight": 10}]}


# -- defaults -----------------------------------------------------------------------------------------


def test_no_retries_field_gives_istio_default_retry_policy_without_503():
    route = only_route("[{route: [{destination: {host: calculator}}]}]")
    assert route["route"]["retry_policy"] == DEFAULT_RETRY
    assert "retriable_status_codes" not in route["route"]["retry_policy"]


def test_absent_timeout_is_written_as_0s():
    assert only_route("[{route: [{destination: {host: calculator}}]}]")["route"]["timeout"] == "0s"


def test_timeout_is_written_in_envoy_duration_form():
    assert only_route("[{timeout: 500ms, route: [{destination: {host: calculator}}]}]")["route"]["timeout"] == "0.500s"


def test_service_without_virtual_service_gets_default_route():
    (route,) = routes(sidecar(manifests()), f"{GW}:80")
    assert route == {
        "name": "default",
        "match": {"prefix": "/"},
        "route": {"cluster": f"outbound|80||{GW}", "timeout": "0s", "retry_policy": DEFAULT_RETRY},
        "decorator": {"operation": f"{GW}:80/*"},
    }


def test_single_destination_ignores_its_weight_and_uses_the_services_only_port():
    route = only_route("[{route: [{destination: {host: calculator}, weight: 30}]}]")
    assert route["route"]["cluster"] == ALL
    assert "weighted_clusters" not in route["route"]


def test_weight_zero_entries_are_dropped():
    route = only_route("""
        - route:
          - {destination: {host: calculator, subset: v1}, weight: 100}
          - {destination: {host: calculator, subset: v2}, weight: 0}
    """)
    assert route["route"]["weighted_clusters"] == {"clusters": [{"name": V1, "weight": 100}]}


def test_destination_port_names_the_cluster():
    route = only_route("[{route: [{destination: {host: calculator.meshcalc.svc.cluster.local, port: {number: 80}}}]}]")
    assert route["route"]["cluster"] == ALL


# -- match --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("{exact: /calcular}", {"path": "/calcular"}),
        ("{prefix: /api}", {"prefix": "/api"}),
        ("{regex: '/v[0-9]+/.*'}", {"safe_regex": {"regex": "/v[0-9]+/.*"}}),
    ],
)
def test_uri_match(uri, expected):
    route, _ = calculator_route(f"""
        - match: [{{uri: {uri}}}]
          route: [{{destination: {{host: calculator, subset: v2}}}}]
        - route: [{{destination: {{host: calculator, subset: v1}}}}]
    """)
    assert route["match"] == {**expected, "case_sensitive": True}


def test_ignore_uri_case_turns_case_sensitive_off():
    route, _ = calculator_route("""
        - match: [{uri: {prefix: /API}, ignoreUriCase: true}]
          route: [{destination: {host: calculator, subset: v2}}]
        - route: [{destination: {host: calculator, subset: v1}}]
    """)
    assert route["match"] == {"prefix": "/API", "case_sensitive": False}


def test_header_matches_sorted_by_name_with_present_and_without_headers():
    route, _ = calculator_route("""
        - match:
          - headers:
              x-b: {prefix: be}
              x-a: {regex: 'a+'}
              x-present: {}
              x-star: {regex: '*'}
            withoutHeaders:
              x-not: {exact: "no"}
              x-absent: {}
            method: {exact: POST}
            authority: {prefix: calculator}
            scheme: {exact: http}
          route: [{destination: {host: calculator, subset: v2}}]
        - route: [{destination: {host: calculator, subset: v1}}]
    """)
    assert route["match"]["headers"] == [
        {"name": "x-a", "string_match": {"safe_regex": {"regex": "a+"}}},
        {"name": "x-absent", "present_match": True, "invert_match": True},
        {"name": "x-b", "string_match": {"prefix": "be"}},
        {"name": "x-not", "string_match": {"exact": "no"}, "invert_match": True, "treat_missing_header_as_empty": True},
        {"name": "x-present", "present_match": True},
        {"name": "x-star", "present_match": True},  # istiod: regex "*" means present
        {"name": ":method", "string_match": {"exact": "POST"}},
        {"name": ":authority", "string_match": {"prefix": "calculator"}},
        {"name": ":scheme", "string_match": {"exact": "http"}},
    ]


def test_query_params_match():
    route, _ = calculator_route("""
        - match: [{queryParams: {debug: {exact: "1"}, trace: {}}}]
          route: [{destination: {host: calculator, subset: v2}}]
        - route: [{destination: {host: calculator, subset: v1}}]
    """)
    assert route["match"]["query_parameters"] == [
        {"name": "debug", "string_match": {"exact": "1"}},
        {"name": "trace", "present_match": True},
    ]


def test_match_entries_are_ored_into_one_route_each_with_names():
    first, second, _ = calculator_route("""
        - name: canary
          match:
          - {name: by-header, headers: {x-canary: {exact: always}}}
          - {name: by-path, uri: {prefix: /v2}}
          route: [{destination: {host: calculator, subset: v2}}]
        - route: [{destination: {host: calculator, subset: v1}}]
    """)
    assert (first["name"], second["name"]) == ("canary.by-header", "canary.by-path")
    assert first["route"]["cluster"] == second["route"]["cluster"] == V2


def test_rules_after_a_catch_all_are_not_emitted():
    emitted = calculator_route("""
        - match: [{uri: {prefix: /}}]
          route: [{destination: {host: calculator, subset: v1}}]
        - route: [{destination: {host: calculator, subset: v2}}]
    """)
    assert [route["route"]["cluster"] for route in emitted] == [V1]


def test_match_entries_after_a_catch_all_entry_are_not_emitted():
    emitted = calculator_route("""
        - match: [{uri: {regex: '.*'}}, {uri: {prefix: /x}}]
          route: [{destination: {host: calculator, subset: v1}}]
    """)
    assert [route["match"] for route in emitted] == [{"safe_regex": {"regex": ".*"}, "case_sensitive": True}]


def test_match_port_other_than_the_listener_port_drops_the_route():
    emitted = calculator_route("""
        - match: [{port: 8080}]
          route: [{destination: {host: calculator, subset: v2}}]
        - route: [{destination: {host: calculator, subset: v1}}]
    """)
    assert [route["route"]["cluster"] for route in emitted] == [V1]


def test_match_gateways_keeps_the_route_only_on_those_proxies():
    emitted = calculator_route("""
        - match: [{gateways: [meshcalc-gateway]}]
          route: [{destination: {host: calculator, subset: v2}}]
        - route: [{destination: {host: calculator, subset: v1}}]
    """)
    assert [route["route"]["cluster"] for route in emitted] == [V1]


def test_virtual_service_whose_routes_all_drop_falls_back_to_default_route():
    (route,) = calculator_route("""
        - match: [{port: 8080}]
          route: [{destination: {host: calculator, subset: v2}}]
    """)
    assert route["name"] == "default" and route["route"]["cluster"] == ALL


# -- retries ------------------------------------------------------------------------------------------


def test_attempts_zero_removes_the_retry_policy():
    route = only_route("[{retries: {attempts: 0}, route: [{destination: {host: calculator}}]}]")
    assert "retry_policy" not in route["route"]


def test_retries_without_attempts_also_removes_the_retry_policy():
    # istiod: a retries block with attempts unset (0) disables retries.
    route = only_route("[{retries: {retryOn: 5xx}, route: [{destination: {host: calculator}}]}]")
    assert "retry_policy" not in route["route"]


def test_attempts_keep_the_other_defaults():
    route = only_route("[{retries: {attempts: 4}, route: [{destination: {host: calculator}}]}]")
    assert route["route"]["retry_policy"] == {**DEFAULT_RETRY, "num_retries": 4}


def test_retry_on_status_codes_go_to_retriable_status_codes():
    route = only_route("""
        - retries: {attempts: 3, retryOn: "gateway-error,503, 504", perTryTimeout: 1s, backoff: 10ms}
          route: [{destination: {host: calculator}}]
    """)
    assert route["route"]["retry_policy"] == {
        **DEFAULT_RETRY,
        "num_retries": 3,
        "retry_on": "gateway-error,retriable-status-codes",
        "retriable_status_codes": [503, 504],
        "per_try_timeout": "1s",
        "retry_back_off": {"base_interval": "0.010s"},
    }


def test_retry_on_without_codes_is_written_as_is():
    route = only_route("[{retries: {attempts: 2, retryOn: '5xx,reset'}, route: [{destination: {host: calculator}}]}]")
    assert route["route"]["retry_policy"]["retry_on"] == "5xx,reset"
    assert "retriable_status_codes" not in route["route"]["retry_policy"]


def test_retry_ignore_previous_hosts_false_removes_the_host_predicate():
    route = only_route(
        "[{retries: {attempts: 2, retryIgnorePreviousHosts: false}, route: [{destination: {host: calculator}}]}]"
    )
    assert "retry_host_predicate" not in route["route"]["retry_policy"]


# -- fault --------------------------------------------------------------------------------------------


def fault_of(fault_yaml: str) -> dict:
    route = only_route(f"[{{fault: {fault_yaml}, route: [{{destination: {{host: calculator}}}}]}}]")
    return route["typed_per_filter_config"]["envoy.filters.http.fault"]


def test_fault_delay_percentage_is_per_million():
    assert fault_of("{delay: {fixedDelay: 2s, percentage: {value: 50}}}") == {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
        "delay": {"fixed_delay": "2s", "percentage": {"numerator": 500000, "denominator": "MILLION"}},
    }


def test_fault_fractional_percentage_truncates_like_istiod():
    assert fault_of("{abort: {httpStatus: 503, percentage: {value: 0.1}}}")["abort"] == {
        "http_status": 503,
        "percentage": {"numerator": 1000, "denominator": "MILLION"},
    }
    # Go's uint32(0.57 * 10000) is 5699 (the float product is 5699.999...): istiod truncates.
    assert fault_of("{abort: {httpStatus: 500, percentage: {value: 0.57}}}")["abort"]["percentage"]["numerator"] == 5699


def test_fault_delay_without_percentage_delays_nothing():
    assert fault_of("{delay: {fixedDelay: 1s}}")["delay"]["percentage"] == {"numerator": 0, "denominator": "HUNDRED"}


def test_fault_abort_without_percentage_has_none_so_aborts_nothing():
    assert fault_of("{abort: {httpStatus: 503}}")["abort"] == {"http_status": 503}


def test_routes_without_fault_have_no_fault_config():
    assert "typed_per_filter_config" not in only_route("[{route: [{destination: {host: calculator}}]}]")


# -- mirror, headers, rewrite, cors -------------------------------------------------------------------


def test_mirror_defaults_to_100_percent_without_shadow_suffix():
    route = only_route("""
        - route: [{destination: {host: calculator, subset: v1}}]
          mirror: {host: calculator, subset: v2}
    """)
    assert route["route"]["request_mirror_policies"] == [
        {
            "cluster": V2,
            "runtime_fraction": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "trace_sampled": False,
            "disable_shadow_host_suffix_append": True,
        }
    ]


def test_mirror_percentage_is_per_million_and_zero_disables_it():
    route = only_route("""
        - route: [{destination: {host: calculator, subset: v1}}]
          mirror: {host: calculator, subset: v2}
          mirrorPercentage: {value: 25}
    """)
    (policy,) = route["route"]["request_mirror_policies"]
    assert policy["runtime_fraction"] == {"default_value": {"numerator": 250000, "denominator": "MILLION"}}
    route = only_route("""
        - route: [{destination: {host: calculator, subset: v1}}]
          mirror: {host: calculator, subset: v2}
          mirrorPercentage: {value: 0}
    """)
    assert "request_mirror_policies" not in route["route"]


def test_headers_set_add_remove_and_authority():
    route = only_route("""
        - headers:
            request:
              set: {x-b: "2", x-a: "1", ":authority": calc.internal}
              add: {x-c: "3"}
              remove: [x-drop, host]
            response:
              set: {x-served-by: mesh}
              remove: [server]
          route:
          - destination: {host: calculator}
            headers: {request: {add: {x-destination: v}}}
    """)
    assert route["request_headers_to_add"] == [
        {"header": {"key": "x-a", "value": "1"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
        {"header": {"key": "x-b", "value": "2"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
        {"header": {"key": "x-c", "value": "3"}, "append_action": "APPEND_IF_EXISTS_OR_ADD"},
        {"header": {"key": "x-destination", "value": "v"}, "append_action": "APPEND_IF_EXISTS_OR_ADD"},
    ]
    assert route["request_headers_to_remove"] == ["x-drop"]  # host is internal: dropped, as istiod does
    assert route["response_headers_to_add"] == [
        {"header": {"key": "x-served-by", "value": "mesh"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
    ]
    assert route["response_headers_to_remove"] == ["server"]
    assert route["route"]["host_rewrite_literal"] == "calc.internal"


def test_weighted_destination_headers_go_on_the_cluster_weight():
    route = only_route("""
        - route:
          - {destination: {host: calculator, subset: v1}, weight: 50, headers: {response: {set: {x-version: v1}}}}
          - {destination: {host: calculator, subset: v2}, weight: 50}
    """)
    first, second = route["route"]["weighted_clusters"]["clusters"]
    assert first["response_headers_to_add"] == [
        {"header": {"key": "x-version", "value": "v1"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
    ]
    assert second == {"name": V2, "weight": 50}


def test_rewrite_uri_and_authority():
    route = only_route("[{rewrite: {uri: /calcular, authority: calc}, route: [{destination: {host: calculator}}]}]")
    assert (route["route"]["prefix_rewrite"], route["route"]["host_rewrite_literal"]) == ("/calcular", "calc")
    route = only_route("""
        - rewrite: {uriRegexRewrite: {match: '^/v1/(.*)', rewrite: '/\\1'}}
          route: [{destination: {host: calculator}}]
    """)
    assert route["route"]["regex_rewrite"] == {"pattern": {"regex": "^/v1/(.*)"}, "substitution": "/\\1"}


def test_cors_policy():
    route = only_route("""
        - corsPolicy:
            allowOrigins: [{exact: "https://calc.example"}, {regex: "https://.*\\\\.example"}]
            allowMethods: [GET, POST]
            allowHeaders: [content-type]
            exposeHeaders: [x-request-id]
            maxAge: 24h
            allowCredentials: true
          route: [{destination: {host: calculator}}]
    """)
    assert route["typed_per_filter_config"]["envoy.filters.http.cors"] == {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "forward_not_matching_preflights": True,
        "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "allow_origin_string_match": [
            {"exact": "https://calc.example"},
            {"safe_regex": {"regex": "https://.*\\.example"}},
        ],
        "allow_methods": "GET,POST",
        "allow_headers": "content-type",
        "expose_headers": "x-request-id",
        "max_age": "86400",
        "allow_credentials": True,
    }


def test_decorator_operation_names_host_and_port_or_the_virtual_service():
    header, split = routes(sidecar(manifests()))
    assert header["decorator"] == {"operation": f"{CALC}:80/*"}
    assert split["decorator"] == {"operation": "calculator:80/*"}


# -- which VirtualService applies where ---------------------------------------------------------------


def test_gateway_bound_virtual_service_is_not_on_the_sidecar_and_mesh_one_not_at_the_ingress():
    mesh = manifests()
    assert [route["name"] for route in routes(sidecar(mesh), f"{GW}:80")] == ["default"]
    ingress_hosts = {
        vhost["name"]
        for vhost in ingress(mesh)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
            "typed_config"
        ]["route_config"]["virtual_hosts"]
    }
    assert ingress_hosts == {"*:80"}


def test_virtual_service_for_gateway_and_mesh_applies_to_both():
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: calculator, namespace: meshcalc}
spec:
  hosts: [calculator]
  gateways: [meshcalc/meshcalc-gateway, mesh]
  http:
  - timeout: 3s
    route: [{destination: {host: calculator}}]
"""
    files = with_istio(vs)
    files["istio/gateway.yaml"] = files["istio/gateway.yaml"].split("---")[0]  # the Gateway only
    mesh = manifests(base=files)
    assert routes(sidecar(mesh))[0]["route"]["timeout"] == "3s"
    assert routes(ingress(mesh), f"{CALC}:80")[0]["route"]["timeout"] == "3s"
