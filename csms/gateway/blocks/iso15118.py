"""ISO 15118 certificate management (2.0.1 M; the 1.6 Plug & Charge application note rides on
DataTransfer): EV contract certificates and their status. Not built yet: declared, so a
charger's requests are answered NotSupported and the coverage page says so."""

from ocpp.v21.enums import Action as V21
from ocpp.v201.enums import Action as V201

from csms.gateway.table import TABLE, V201_AND_V21, Direction, Version

PLUG_AND_CHARGE = "ISO 15118 Plug & Charge"

TABLE.unsupported(V201_AND_V21, Direction.FROM_CHARGER, V201.get_15118_ev_certificate,
                  V201.get_certificate_status, block=__name__, note=PLUG_AND_CHARGE)
TABLE.unsupported(Version.V21, Direction.FROM_CHARGER, V21.get_certificate_chain_status,
                  block=__name__, note=PLUG_AND_CHARGE)
