"""``python -m tools.simulator``: virtual OCPP 1.6 / 2.0.1 chargers against a running CSMS until
--duration or Ctrl-C (`make run` starts a few beside the demo server). Prints a summary line of
the fleet's metrics at the end; ``-v 2`` also prints every charger's state changes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Sequence

from . import ChargerConfig, FleetSummary, OcppVersion, VirtualCharger, run_many

VERSIONS: dict[str, OcppVersion] = {"1.6": "1.6", "2.0.1": "2.0.1"}


def station_ids(prefix: str, count: int, version: str) -> list[tuple[str, OcppVersion]]:
    """``<prefix>-<version digits>-<nnnn>``; "mix" alternates 1.6 and 2.0.1, starting with 1.6."""
    stations = []
    for number in range(1, count + 1):
        if version == "mix":
            chosen: OcppVersion = "1.6" if number % 2 else "2.0.1"
        else:
            chosen = VERSIONS[version]
        stations.append((f"{prefix}-{chosen.replace('.', '')}-{number:04d}", chosen))
    return stations


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.simulator",
        description="Run virtual OCPP 1.6 / 2.0.1 chargers against a CSMS until --duration or "
        "Ctrl-C.",
    )
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ocpp/", help="CSMS base URL")
    parser.add_argument("--count", type=int, default=1, help="number of chargers")
    parser.add_argument(
        "--version",
        dest="ocpp_version",
        choices=["mix", *VERSIONS],
        default="mix",
        help="OCPP version of the chargers; mix alternates",
    )
    parser.add_argument("--prefix", default="SIM", help="station id prefix")
    parser.add_argument("--password", default=None, help="HTTP Basic password of every charger")
    parser.add_argument("--tokens", default="SIMTOKEN", help="comma-separated id tokens")
    parser.add_argument("--connectors", type=int, default=1, help="connectors per charger")
    parser.add_argument("--meter-interval", type=float, default=60, help="seconds")
    parser.add_argument(
        "--session-every",
        type=float,
        default=0,
        help="mean seconds between automatic sessions per connector; 0 = remote starts only",
    )
    parser.add_argument("--session-length", type=float, default=120, help="seconds")
    parser.add_argument("--power", type=float, default=7400, help="charging power in W")
    parser.add_argument("--duration", type=float, default=0, help="seconds; 0 = until Ctrl-C")
    parser.add_argument("--ramp", type=float, default=200, help="chargers started per second")
    parser.add_argument(
        "-v",
        "--verbosity",
        type=int,
        choices=[0, 1, 2, 3],
        default=1,
        help="2 or more: print every charger's state changes",
    )
    return parser


def charger_configs(options: argparse.Namespace) -> list[ChargerConfig]:
    tokens = [t.strip() for t in options.tokens.split(",") if t.strip()]
    return [
        ChargerConfig(
            station_id=station_id,
            version=version,
            url=options.url,
            password=options.password,
            connectors=options.connectors,
            id_tokens=tokens,
            meter_interval=options.meter_interval,
            session_every=options.session_every or None,
            session_length=options.session_length,
            power_w=options.power,
        )
        for station_id, version in station_ids(options.prefix, options.count, options.ocpp_version)
    ]


async def simulate(
    configs: list[ChargerConfig], duration: float, ramp: float, verbose: bool
) -> FleetSummary:
    """Run the fleet until ``duration`` seconds passed (0: never) or SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Ctrl-C and `kill` (make run stops the simulator that way) end sessions cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration > 0:
        loop.call_later(duration, stop.set)
    try:
        return await run_many(
            configs, stop, ramp_per_second=ramp, on_state=print_state if verbose else None
        )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def print_state(charger: VirtualCharger, state: str) -> None:
    print(f"{charger.config.station_id}: {state}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser()
    options = parser.parse_args(argv)
    if options.count < 1 or options.connectors < 1 or options.ramp <= 0:
        parser.error("--count and --connectors must be at least 1, --ramp positive")
    # What the chargers log (refused messages, lost connections) goes to stderr, as the
    # server's own log does; LOG_LEVEL is the server's knob too.
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    summary = asyncio.run(
        simulate(
            charger_configs(options), options.duration, options.ramp, options.verbosity >= 2
        )
    )
    print(summary.line())


if __name__ == "__main__":
    main()
