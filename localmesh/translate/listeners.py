"""The HTTP listeners: connection manager, filter chain, access log, virtual hosts."""

from __future__ import annotations

from localmesh.translate.envoy_types import HCM_FILTER, HCM_TYPE, ROUTER_FILTER, ROUTER_TYPE
from localmesh.translate.routes import CORS_FILTER, FAULT_FILTER, FAULT_TYPE

FILE_ACCESS_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"

# One JSON object per request; the flags and the cluster/host prove which mesh behaviour acted.
ACCESS_LOG_FORMAT = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "authority": "%REQ(:AUTHORITY)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "route_name": "%ROUTE_NAME%",
    "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
    "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "traceparent": "%REQ(TRACEPARENT)%",
    "b3_trace_id": "%REQ(X-B3-TRACEID)%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
}


def socket_address(address: str, port: int) -> dict:
    return {"socket_address": {"address": address, "port_value": port}}


def access_log(path: str, proxy: str) -> list[dict]:
    log_format = {"proxy": proxy, **ACCESS_LOG_FORMAT}
    return [
        {
            "name": "envoy.access_loggers.file",
            "typed_config": {"@type": FILE_ACCESS_LOG_TYPE, "path": path, "log_format": {"json_format": log_format}},
        }
    ]


def http_filters() -> list[dict]:
    """istiod's chain on every HTTP connection manager: fault, cors, then router."""
    return [
        {"name": FAULT_FILTER, "typed_config": {"@type": FAULT_TYPE}},
        {
            "name": CORS_FILTER,
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"},
        },
        {"name": ROUTER_FILTER, "typed_config": {"@type": ROUTER_TYPE}},
    ]


def virtual_host(name: str, domains: list[str], routes: list[dict]) -> dict:
    # istiod sets include_request_attempt_count: the upstream sees x-envoy-attempt-count.
    return {"name": name, "domains": domains, "routes": routes, "include_request_attempt_count": True}


def http_connection_manager(
    stat_prefix: str,
    route_config: dict,
    access_log_path: str,
    proxy: str,
    *,
    edge: bool,
    forward_proxy: bool,
) -> dict:
    hcm = {
        "@type": HCM_TYPE,
        "stat_prefix": stat_prefix,
        "codec_type": "AUTO",
        "route_config": route_config,
        "http_filters": http_filters(),
        "access_log": access_log(access_log_path, proxy),
        # istiod: the gateway is the edge (its peer's address is the client's); a sidecar is not.
        "use_remote_address": edge,
        # meshConfig.pathNormalization BASE, istiod's default.
        "normalize_path": True,
        "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
        "server_name": "istio-envoy",
    }
    if forward_proxy:
        # The app reaches this sidecar through HTTP_PROXY, so its request line is an
        # absolute URI ("POST http://calculator/calcular HTTP/1.1"); Envoy's HTTP/1
        # codec then takes :authority from that URI and :path from its path.
        hcm["http_protocol_options"] = {"allow_absolute_url": True}
    return hcm


def http_listener(name: str, address: str, port: int, hcm: dict) -> dict:
    return {
        "name": name,
        "address": socket_address(address, port),
        "filter_chains": [
            {"filters": [{"name": HCM_FILTER, "typed_config": hcm}]}
        ],
    }
