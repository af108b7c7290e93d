"""Local lists: updates, the list's version and limits, in each version's words."""

from stations.services.local_lists import LocalListLimitsQuery, LocalListSend, LocalListVersionQuery
from tests.support.examples import Examples

ENTRY = {"status": "Accepted", "expires_at": None, "group": "", "type": "ISO14443"}

EXAMPLES = Examples(
    sent={
        ("1.6", LocalListSend): (LocalListSend(version=1, full=True, entries={"CARD-1": ENTRY}),
                                 {"status": "Accepted"}),
        ("2.0.1", LocalListSend): (LocalListSend(version=2, full=False,
                                                 entries={"CARD-1": ENTRY, "OLD": None}),
                                   {"status": "Accepted"}),
        ("1.6", LocalListVersionQuery): (LocalListVersionQuery(), {"listVersion": 0}),
        ("2.0.1", LocalListVersionQuery): (LocalListVersionQuery(), {"versionNumber": 0}),
        ("1.6", LocalListLimitsQuery): (LocalListLimitsQuery(), {"configurationKey": [
            {"key": "LocalAuthListMaxLength", "readonly": True, "value": "100"},
            {"key": "SendLocalListMaxLength", "readonly": True, "value": "20"}]}),
        ("2.0.1", LocalListLimitsQuery): (LocalListLimitsQuery(), {"getVariableResult": [
            {"attributeStatus": "Accepted", "component": {"name": "LocalAuthListCtrlr"},
             "variable": {"name": "ItemsPerMessage"}, "attributeValue": "20"}]}),
    },
)
