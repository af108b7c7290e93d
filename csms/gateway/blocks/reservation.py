"""Reservation (1.6 Reservation; 2.0.1 H): keeping a connector for a driver. Not built yet:
declared, so a charger's reservation news is answered NotSupported and the coverage page says
so."""

from ocpp.v201.enums import Action as V201

from csms.gateway.table import EVERY_VERSION, TABLE, V201_AND_V21, Direction

RESERVATIONS = "reservations"

TABLE.unsupported(EVERY_VERSION, Direction.TO_CHARGER, V201.reserve_now,
                  V201.cancel_reservation, block=__name__, note=RESERVATIONS)
TABLE.unsupported(V201_AND_V21, Direction.FROM_CHARGER, V201.reservation_status_update,
                  block=__name__, note=RESERVATIONS)
