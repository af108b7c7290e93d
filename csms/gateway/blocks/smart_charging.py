"""Smart charging (1.6 SmartCharging; 2.0.1 K; 2.1's dynamic schedules, priority charging and
grid signals): charging profiles and limits. Not built yet: declared, so a charger's limits
are answered NotSupported and the coverage page says so."""

from ocpp.v21.enums import Action as V21
from ocpp.v201.enums import Action as V201

from csms.gateway.table import EVERY_VERSION, TABLE, V201_AND_V21, Direction, Version

PROFILES = "charging profiles and site load management"

TABLE.unsupported(EVERY_VERSION, Direction.TO_CHARGER, V201.set_charging_profile,
                  V201.clear_charging_profile, V201.get_composite_schedule, block=__name__,
                  note=PROFILES)
TABLE.unsupported(V201_AND_V21, Direction.TO_CHARGER, V201.get_charging_profiles,
                  block=__name__, note=PROFILES)
TABLE.unsupported(V201_AND_V21, Direction.FROM_CHARGER, V201.report_charging_profiles,
                  V201.notify_charging_limit, V201.cleared_charging_limit,
                  V201.notify_ev_charging_needs, V201.notify_ev_charging_schedule,
                  block=__name__, note=PROFILES)
TABLE.unsupported(Version.V21, Direction.TO_CHARGER, V21.afrr_signal,
                  V21.update_dynamic_schedule, V21.use_priority_charging,
                  V21.notify_allowed_energy_transfer, block=__name__,
                  note="OCPP 2.1 grid signals, dynamic schedules and priority charging")
TABLE.unsupported(Version.V21, Direction.FROM_CHARGER, V21.pull_dynamic_schedule_update,
                  V21.notify_priority_charging, block=__name__,
                  note="OCPP 2.1 dynamic schedules and priority charging")
