"""Envoy processes: the file-based xDS split, and changes applied to a running Envoy."""

import http.client

import pytest

from localmesh.envoy import HCM_FILTER, EnvoyProcess, envoy_binary, file_xds
from localmesh.processes import free_port
from tests.tools import ENVOY_INSTALL, require


def direct_response_bootstrap(body: str, listen_port: int, admin_port: int) -> dict:
    """A listener answering ``body`` and one cluster named after it."""
    return {
        "node": {"id": "test", "cluster": "test"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "test",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": HCM_FILTER,
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                        "http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": "test",
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {
                                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                                                },
                                            }
                                        ],
                                        "route_config": {
                                            "name": "test-routes",
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {
                                                            "match": {"prefix": "/"},
                                                            "direct_response": {
                                                                "status": 200,
                                                                "body": {"inline_string": body},
                                                            },
                                                        }
                                                    ],
                                                }
                                            ],
                                        },
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": f"cluster-{body}",
                    "connect_timeout": "1s",
                    "type": "STATIC",
                    "load_assignment": {"cluster_name": f"cluster-{body}", "endpoints": []},
                }
            ],
        },
    }


def test_file_xds_moves_routes_to_rds_and_resources_to_watched_files(tmp_path):
    config = file_xds(direct_response_bootstrap("uno", 1, 2), tmp_path)
    assert "static_resources" not in config.bootstrap
    lds = config.bootstrap["dynamic_resources"]["lds_config"]["path_config_source"]
    assert lds == {"path": str(tmp_path / "listeners.json"), "watched_directory": {"path": str(tmp_path)}}
    manager = config.listeners[0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert "route_config" not in manager
    assert manager["rds"]["route_config_name"] == "test-routes"
    assert [r["name"] for r in config.routes] == ["test-routes"]
    documents = config.documents()
    assert documents["cds"]["resources"][0]["@type"].endswith("envoy.config.cluster.v3.Cluster")
    # the version is the content's: same content, same version; other content, another
    again = file_xds(direct_response_bootstrap("uno", 1, 2), tmp_path).documents()
    other = file_xds(direct_response_bootstrap("dos", 1, 2), tmp_path).documents()
    assert again["rds"]["version_info"] == documents["rds"]["version_info"] != other["rds"]["version_info"]


def test_file_xds_leaves_the_input_untouched(tmp_path):
    bootstrap = direct_response_bootstrap("uno", 1, 2)
    file_xds(bootstrap, tmp_path)
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert "route_config" in manager


@pytest.fixture
def envoy(tmp_path):
    require("envoy", envoy_binary(), ENVOY_INSTALL)
    process = EnvoyProcess("test", tmp_path, free_port())
    yield process
    process.stop()


def answer(port: int) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/")
        return connection.getresponse().read()
    finally:
        connection.close()


def test_a_running_envoy_takes_new_routes_and_clusters_without_restarting(envoy):
    port = free_port()
    envoy.start(direct_response_bootstrap("uno", port, envoy.admin_port))
    envoy.wait_ready()
    pid = envoy.process.pid
    assert answer(port) == b"uno"
    route_updates = "http.test.rds.test-routes.update_success"
    before = envoy.stats(route_updates)[route_updates]

    envoy.reconfigure(direct_response_bootstrap("dos", port, envoy.admin_port))
    assert answer(port) == b"dos"
    assert envoy.process.pid == pid and envoy.running()
    clusters = envoy.admin("/clusters")[1].decode()
    assert "cluster-dos::" in clusters and "cluster-uno::" not in clusters
    # routes came by RDS: the listener was not replaced
    assert envoy.stats(route_updates)[route_updates] > before
    assert envoy.stats("listener_manager.listener_modified")["listener_manager.listener_modified"] == 0


def test_reconfigure_refuses_a_changed_admin_address(envoy):
    port = free_port()
    envoy.start(direct_response_bootstrap("uno", port, envoy.admin_port))
    envoy.wait_ready()
    with pytest.raises(ValueError, match="restart"):
        envoy.reconfigure(direct_response_bootstrap("uno", port, envoy.admin_port + 1))
