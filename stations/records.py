"""What chargers report, in the domain's words: the values the gateway's blocks hand to the
domain services, whichever OCPP version said them."""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from accounts.models import IdToken
from stations.models import Station

# The measurand both versions use for the energy register; the default when a reading names none.
ENERGY_REGISTER = "Energy.Active.Import.Register"


@dataclass(frozen=True, slots=True)
class Sample:
    """A meter reading in domain units: energy in Wh, power in W, current A, voltage V, SoC %."""

    timestamp: datetime
    value: Decimal
    measurand: str = ENERGY_REGISTER
    unit: str = "Wh"
    phase: str = ""
    location: str = ""
    context: str = ""


def energy_register(samples: list[Sample]) -> Decimal | None:
    """The last reading of the whole station's energy register among `samples` (not a phase's)."""
    register = [s.value for s in samples if s.measurand == ENERGY_REGISTER and not s.phase]
    return register[-1] if register else None


@dataclass(slots=True)
class TransactionReport:
    """What a charger says in one transaction message, whichever version it speaks."""

    kind: str  # TransactionMessage.Kind
    timestamp: datetime
    transaction_id: str | None = None  # None: a start for which we assign the id
    sequence: int | None = None
    start_key: str | None = None
    evse: int | None = None
    connector: int | None = None
    id_token: str | None = None
    meter_wh: Decimal | None = None  # start register on start, stop register on end
    # The card of id_token when the block has it already (authorize's): not looked up again.
    token: IdToken | None = None
    # The card was answered anything but Accepted.
    token_refused: bool = False
    stop_reason: str = ""
    trigger: str = ""
    offline: bool = False
    samples: list[Sample] = field(default_factory=list)


@dataclass(slots=True)
class StatusReport:
    """A connector's (or, with evse 0 or no connector, the whole station's) status."""

    station: Station
    evse: int
    connector: int | None
    status: str
    detail: str
    error_code: str
    info: str
    timestamp: datetime
    # The charger says no session runs on the connector (it is free, or waits for a new one).
    no_session: bool = False
    received_at: datetime | None = None  # when we heard it (the charger's timestamp may lag)

    @property
    def of_station(self) -> bool:
        return self.evse == 0 or self.connector is None


@dataclass(slots=True)
class Readings:
    """Samples outside a transaction message: of the transaction named, or of the EVSE's
    active one, or of no transaction."""

    station: Station
    evse: int
    transaction_id: str | None
    samples: list[Sample]


@dataclass(frozen=True, slots=True)
class VariableReport:
    """A device-model variable (2.0.1) or configuration key (1.6, component "") as reported."""

    component: str
    variable: str
    value: str
    attribute_type: str = "Actual"
    mutability: str = ""
    component_instance: str = ""
    variable_instance: str = ""
    evse: int | None = None
    connector: int | None = None
