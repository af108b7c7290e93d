"""Display messages (2.0.1 O): texts shown on a charger's display. Not built yet: declared, so
a charger's report is answered NotSupported and the coverage page says so."""

from ocpp.v201.enums import Action as V201

from csms.gateway.table import TABLE, V201_AND_V21, Direction

DISPLAY = "display messages"

TABLE.unsupported(V201_AND_V21, Direction.TO_CHARGER, V201.set_display_message,
                  V201.get_display_messages, V201.clear_display_message, block=__name__,
                  note=DISPLAY)
TABLE.unsupported(V201_AND_V21, Direction.FROM_CHARGER, V201.notify_display_messages,
                  block=__name__, note=DISPLAY)
