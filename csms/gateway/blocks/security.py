"""Security (1.6 Security Whitepaper; 2.0.1 A and M): security events a station reports, and
its certificates. Issuing, installing and revoking certificates is not built yet."""

from ocpp.v16.enums import Action as V16
from ocpp.v201.enums import Action as V201

from csms.gateway.blocks._shared import notification_record
from csms.gateway.table import TABLE, V201_AND_V21, Context, Direction, Version
from stations.models import StationEvent

CERTIFICATES = "the charger certificate lifecycle and the CSMS's certificate authority"


@TABLE.handles((Version.V16, Version.V201), V16.security_event_notification)
def security_event(ctx: Context, payload: dict) -> dict:
    return notification_record(ctx, payload, StationEvent.Kind.SECURITY, "type")


for versions in (Version.V16, V201_AND_V21):
    TABLE.unsupported(versions, Direction.FROM_CHARGER, V201.sign_certificate, block=__name__,
                      note=CERTIFICATES)
    TABLE.unsupported(versions, Direction.TO_CHARGER, V201.certificate_signed,
                      V201.install_certificate, V201.delete_certificate,
                      V201.get_installed_certificate_ids, block=__name__, note=CERTIFICATES)
TABLE.not_offered(Version.V21, like=Version.V201, block=__name__)
