"""``python -m localmesh up``: the services on localhost, until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from localmesh.processes import ServiceProcess, ServiceSpec
from servicekit.settings import env_int

RUN_DIR = Path(".run")


def local_services(ingress_port: int) -> list[ServiceSpec]:
    """Calculator v1 and v2 beside the gateway, which calls v1."""
    v1_port, v2_port = ingress_port + 1, ingress_port + 2
    common = {"SHUTDOWN_DRAIN_SECONDS": "0"}

    def calculator(version: str, port: int) -> ServiceSpec:
        data = RUN_DIR / "data" / f"calculator-{version}"
        return ServiceSpec(
            f"calculator-{version}",
            "calculator.app:create_app()",
            port,
            {**common, "CALCULATOR_VERSION": version, "DATA_DIR": str(data)},
        )

    return [
        calculator("v1", v1_port),
        calculator("v2", v2_port),
        ServiceSpec(
            "gateway",
            "gateway.app:create_app()",
            ingress_port,
            {**common, "CALCULATOR_URL": f"http://127.0.0.1:{v1_port}/calcular"},
        ),
    ]


def up(ingress_port: int) -> int:
    services = [ServiceProcess(spec, RUN_DIR / "logs") for spec in local_services(ingress_port)]
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        for service in services:
            service.start()
        for service in services:
            service.wait_ready()
        print("Listo. Servicios:")
        for service in services:
            print(f"  {service.spec.name:<14} {service.url}  (log: {service.log_path})")
        gateway = services[-1]
        print("\nPrueba:")
        print(
            f"  curl -s -X POST {gateway.url}/calcular -H 'Content-Type: application/json' "
            "-d '{\"operacion\": \"dividir\", \"numero1\": 7, \"numero2\": 2}'"
        )
        print(f"  abre {gateway.url}/ en el navegador\n\nCtrl-C para detener.", flush=True)
        # Like a ReplicaSet: a replica that dies is started again.
        while not stopping.wait(0.5):
            for service in services:
                if not service.running():
                    print(f"{service.spec.name} terminó; reiniciando", flush=True)
                    service.restarts += 1
                    service.start()
        return 0
    finally:
        for service in reversed(services):
            service.stop(timeout=10)
        print("Detenido.", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmesh")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the services on localhost until Ctrl-C")
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(env_int(os.environ, "INGRESS_PORT", 8080, 1, 65533))
    return 2


if __name__ == "__main__":
    sys.exit(main())
