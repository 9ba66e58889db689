"""Ports for the local mesh's processes."""

from localmesh.processes import free_ports


def test_free_ports_are_distinct_and_skip_the_excluded():
    # One by one, a closed probe's port may be handed out again; drawn together, never.
    for _ in range(200):
        ports = free_ports(14, exclude=[8080])
        assert len(set(ports)) == 14 and 8080 not in ports
