"""Virtual EV chargers speaking OCPP-J 1.6 or 2.0.1 over a real WebSocket.

Deliberately not built on the ocpp library's ChargePoint: a benchmark runs thousands of these in
one process, so each charger is a handful of asyncio tasks exchanging raw JSON frames. A pure
websockets client: nothing here imports Django or the server's code.

A charger can be driven two ways:

* ``await charger.run(stop)``: behaves like a real station (connect with backoff, boot, status,
  heartbeats, automatic and remote sessions, re-sending unanswered transaction messages after a
  reconnect) until ``stop`` is set, then ends its sessions and disconnects.
* step by step from a test: ``connect()``, ``boot()``, ``status()``, ``authorize()``,
  ``start_session()``, ``send_meter_values()``, ``stop_session()``, ``heartbeat()``, ``close()``.

In both modes the charger answers CALLs from the CSMS; ``on_call`` lets a test observe or override
those answers.

station.py is the model both versions share, v16.py and v201.py what each version says,
fleet.py runs many at once, and ``python -m tools.simulator`` runs a fleet from the command line.
"""

from .fleet import FleetSummary, run_fleet, run_many
from .station import (
    CallError,
    CallTimeout,
    ChargerConfig,
    DeliveryError,
    Metrics,
    NotConnected,
    OcppVersion,
    Session,
    VirtualCharger,
    utc_timestamp,
)
from .v16 import Charger16
from .v201 import Charger201

__all__ = [
    "CallError",
    "CallTimeout",
    "Charger16",
    "Charger201",
    "ChargerConfig",
    "DeliveryError",
    "FleetSummary",
    "Metrics",
    "NotConnected",
    "OcppVersion",
    "Session",
    "VirtualCharger",
    "run_fleet",
    "run_many",
    "utc_timestamp",
]
