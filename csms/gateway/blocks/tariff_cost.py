"""Tariff and cost (2.0.1 I; 1.6 has none): the running cost of a session shown at the
charger. (The final cost goes with the reply to the session's end: transactions.py.)"""

from ocpp.v21.enums import Action as V21
from ocpp.v201.enums import Action as V201

from csms.gateway.table import TABLE, Direction, Version
from stations.services import commands


@TABLE.builds(Version.V201, V201.cost_updated, commands.CostUpdate)
def cost_update_201(command: commands.CostUpdate) -> dict:
    """The running cost of a session, including taxes, for the charger's display."""
    return {"totalCost": command.total, "transactionId": command.transaction_id}


TABLE.not_offered(Version.V21, like=Version.V201, block=__name__)
TABLE.unsupported(Version.V21, Direction.TO_CHARGER, V21.change_transaction_tariff,
                  V21.clear_tariffs, V21.get_tariffs, V21.set_default_tariff,
                  V21.notify_web_payment_started, block=__name__,
                  note="OCPP 2.1 tariffs and payment")
TABLE.unsupported(Version.V21, Direction.FROM_CHARGER, V21.notify_settlement,
                  V21.vat_number_validation, block=__name__, note="OCPP 2.1 payment")
