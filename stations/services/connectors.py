"""A station's EVSEs and connectors: found by their numbers, created the first time a charger
names them."""

from stations import persistence
from stations.models import Connector, Evse, Station, Transaction


def connector_get(station: Station, evse_number: int, connector_number: int) -> Connector:
    """The connector, with its EVSE: one written-out query when it exists (it nearly always
    does), the ORM's get-or-creates only the first time."""
    return connector_find(station, evse_number, connector_number)[0]


def connector_find(station: Station, evse_number: int, connector_number: int
                   ) -> tuple[Connector, bool]:
    """The connector, with its EVSE, and whether a transaction is active on the EVSE, in the
    same query."""
    found = persistence.connector_row(station.pk, evse_number, connector_number)
    if found is not None:
        connector, evse, evse_busy = found
        connector.evse = evse
        return connector, evse_busy
    evse, created = Evse.objects.get_or_create(station=station, number=evse_number)
    connector, _ = Connector.objects.get_or_create(evse=evse, number=connector_number)
    return connector, not created and Transaction.objects.filter(
        evse=evse, state=Transaction.State.ACTIVE).exists()
