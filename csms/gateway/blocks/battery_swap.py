"""Battery swapping (2.1 S): stations that swap an EV's battery instead of charging it. Not
built yet: declared, so the coverage page says so."""

from ocpp.v21.enums import Action as V21

from csms.gateway.table import TABLE, Direction, Version

SWAP = "OCPP 2.1 battery swapping"

TABLE.unsupported(Version.V21, Direction.FROM_CHARGER, V21.battery_swap, block=__name__,
                  note=SWAP)
TABLE.unsupported(Version.V21, Direction.TO_CHARGER, V21.request_battery_swap, block=__name__,
                  note=SWAP)
