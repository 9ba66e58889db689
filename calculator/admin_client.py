"""The client of a calculator replica's admin surface (calculator/admin.py): set, read and clear its
fault. Used by ``python -m localmesh fault`` (every local replica, by URL) and, inside a pod, by
``scripts/kind.sh fault`` through ``kubectl exec``:

    python -m calculator.admin_client set [--errors 0.5] [--status 503] [--delay 2s] [--delay-share 1] [--hang]
    python -m calculator.admin_client clear
    python -m calculator.admin_client show

In a pod it reaches ``ADMIN_BIND`` from the container's own environment. Operator-facing: English.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
from collections.abc import Mapping

TIMEOUT_SECONDS = 5.0
_DELAY = re.compile(r"(\d+(?:\.\d+)?)(ms|s)?")


class FaultCommandError(RuntimeError):
    """A fault that could not be set or read; the message says why."""


def parse_delay(text: str) -> float:
    """Seconds from "2s", "500ms" or "2"."""
    match = _DELAY.fullmatch(text.strip())
    if match is None:
        raise FaultCommandError(f"delay {text!r}: expected seconds such as 2s, 500ms or 2")
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def fault_body(
    errors: float | None = None,
    status: int | None = None,
    delay: str | None = None,
    delay_share: float | None = None,
    hang: bool = False,
) -> dict:
    """The admin API's JSON from the command line's words; what is left out means no fault of that kind."""
    body: dict = {"hang": hang}
    if errors is not None:
        body["errors"] = errors
    if status is not None:
        body["status"] = status
    if delay is not None:
        body["delay_seconds"] = parse_delay(delay)
    if delay_share is not None:
        body["delay_share"] = delay_share
    return body


def fault_options(fault: Mapping) -> list[str]:
    """The command line's words for a fault (the admin API's JSON): the inverse of ``fault_body``."""
    options = []
    if fault.get("errors"):
        options += ["--errors", f"{fault['errors']:g}", "--status", str(fault.get("status", 503))]
    if fault.get("delay_seconds"):
        options += ["--delay", f"{fault['delay_seconds']:g}s", "--delay-share", f"{fault.get('delay_share', 1.0):g}"]
    if fault.get("hang"):
        options.append("--hang")
    return options


def _call(admin: str, method: str, body: Mapping | None = None) -> dict:
    """``admin`` is host:port."""
    host, _, port = admin.removeprefix("http://").rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT_SECONDS)
    try:
        data = None if body is None else json.dumps(body).encode()
        connection.request(method, "/fault", body=data, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read() or b"{}")
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise FaultCommandError(f"{admin}: no answer from the admin surface ({error})") from None
    finally:
        connection.close()
    if response.status != 200:
        raise FaultCommandError(f"{admin}: {answer.get('error', response.status)}")
    return answer


def set_fault(admin: str, body: Mapping) -> dict:
    return _call(admin, "PUT", body)


def clear_fault(admin: str) -> dict:
    return _call(admin, "DELETE")


def read_fault(admin: str) -> dict:
    return _call(admin, "GET")


def describe(fault: Mapping) -> str:
    """One line a person reads: "none", or what the replica does to its requests."""
    parts = []
    if fault.get("hang"):
        parts.append("hangs every request")
    if fault.get("errors"):
        parts.append(f"{fault['errors']:.0%} answered {fault['status']}")
    if fault.get("delay_seconds") and fault.get("delay_share"):
        parts.append(f"{fault['delay_share']:.0%} delayed {fault['delay_seconds']:g} s")
    return ", ".join(parts) or "none"


def add_fault_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--errors", type=float, help="share of requests answered with --status (0 to 1)")
    parser.add_argument("--status", type=int, help="the status of a failed request: 500, 502, 503 (default) or 504")
    parser.add_argument("--delay", help="added before answering: 2s, 500ms")
    parser.add_argument("--delay-share", type=float, help="share of requests delayed (default 1)")
    parser.add_argument("--hang", action="store_true", help="accept every request and answer none")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calculator.admin_client", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add_fault_options(commands.add_parser("set", help="replace this replica's fault"))
    commands.add_parser("clear", help="no fault")
    commands.add_parser("show", help="the current fault")
    args = parser.parse_args(argv)
    admin = os.environ.get("ADMIN_BIND")
    if not admin:
        print("error: ADMIN_BIND is not set: this replica has no admin surface", file=sys.stderr)
        return 2
    try:
        if args.command == "set":
            body = fault_body(args.errors, args.status, args.delay, args.delay_share, args.hang)
            answer = set_fault(admin, body)
        elif args.command == "clear":
            answer = clear_fault(admin)
        else:
            answer = read_fault(admin)
    except FaultCommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{answer['pod']}: fault {describe(answer['fault'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
