"""Distributed energy resource control (2.1 R): a charger's inverter as a grid resource. Not
built yet: declared, so the coverage page says so."""

from ocpp.v21.enums import Action as V21

from csms.gateway.table import TABLE, Direction, Version

DER = "OCPP 2.1 DER control"

TABLE.unsupported(Version.V21, Direction.TO_CHARGER, V21.set_der_control, V21.get_der_control,
                  V21.clear_der_control, block=__name__, note=DER)
TABLE.unsupported(Version.V21, Direction.FROM_CHARGER, V21.report_der_control,
                  V21.notify_der_alarm, V21.notify_der_start_stop, block=__name__, note=DER)
