"""A station's EVSEs and connectors: found by their numbers, created the first time a charger
names them."""

from stations import persistence
from stations.models import Connector, Evse, Station


def connector_get(station: Station, evse_number: int, connector_number: int) -> Connector:
    """The connector, with its EVSE: one written-out query when it exists (it nearly always
    does), the ORM's get-or-creates only the first time."""
    found = persistence.connector_row(station.pk, evse_number, connector_number)
    if found is not None:
        connector, evse = found
        connector.evse = evse
        return connector
    evse, _ = Evse.objects.get_or_create(station=station, number=evse_number)
    connector, _ = Connector.objects.get_or_create(evse=evse, number=connector_number)
    return connector
