"""Many simulated chargers in one process: started at a bounded rate, their metrics summed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .station import ChargerConfig, Metrics, StateHook, VirtualCharger, wait_event

logger = logging.getLogger(__name__)


@dataclass
class FleetSummary:
    chargers: int
    connected: int  # chargers that connected at least once
    booted: int  # chargers whose BootNotification was accepted at least once
    metrics: Metrics

    def line(self) -> str:
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.1f}ms"

        m = self.metrics
        return (
            f"chargers={self.chargers} connected={self.connected} booted={self.booted} "
            f"calls={m.calls} errors={m.call_errors} timeouts={m.timeouts} "
            f"connect_failures={m.connect_failures} disconnects={m.disconnects} "
            f"p50={ms(m.percentile(50))} p99={ms(m.percentile(99))}"
        )


async def run_fleet(
    chargers: Sequence[VirtualCharger], stop: asyncio.Event, *, ramp_per_second: float = 100.0
) -> FleetSummary:
    """Run chargers concurrently, starting at most ``ramp_per_second`` of them per second,
    until ``stop`` is set; returns the aggregate metrics."""
    if ramp_per_second <= 0:
        raise ValueError("ramp_per_second must be positive")
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    tasks = []
    for index, charger in enumerate(chargers):
        due = started_at + index / ramp_per_second
        if stop.is_set() or await wait_event(stop, due - loop.time()):
            break
        tasks.append(asyncio.create_task(charger.run(stop), name=charger.config.station_id))
    for charger, outcome in zip(
        chargers, await asyncio.gather(*tasks, return_exceptions=True), strict=False
    ):
        if isinstance(outcome, Exception):
            logger.error("%s crashed", charger.config.station_id, exc_info=outcome)
    total = Metrics()
    for charger in chargers:
        total.merge(charger.metrics)
    return FleetSummary(
        chargers=len(chargers),
        connected=sum(1 for c in chargers if c.metrics.connects),
        booted=sum(1 for c in chargers if c.metrics.boots_accepted),
        metrics=total,
    )


async def run_many(
    configs: Iterable[ChargerConfig],
    stop: asyncio.Event,
    *,
    ramp_per_second: float = 100.0,
    on_state: StateHook | None = None,
) -> FleetSummary:
    """Build a charger per config and run them all (see ``run_fleet``)."""
    chargers = [VirtualCharger(config, on_state=on_state) for config in configs]
    return await run_fleet(chargers, stop, ramp_per_second=ramp_per_second)
