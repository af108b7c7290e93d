"""Remote control: starting and stopping sessions, unlocking, triggering messages."""

from stations.services import commands
from tests.support.examples import Examples

EXAMPLES = Examples(
    sent={
        ("1.6", commands.RemoteStart): (commands.RemoteStart(evse=1, id_token="CARD-1"),
                                        {"status": "Accepted"}),
        ("2.0.1", commands.RemoteStart): (commands.RemoteStart(evse=1, id_token="CARD-1"),
                                          {"status": "Accepted"}),
        ("1.6", commands.RemoteStop): (commands.RemoteStop(transaction_id="7"),
                                       {"status": "Accepted"}),
        ("2.0.1", commands.RemoteStop): (commands.RemoteStop(transaction_id="TX-1"),
                                         {"status": "Accepted"}),
        ("1.6", commands.Unlock): (commands.Unlock(evse=1), {"status": "Unlocked"}),
        ("2.0.1", commands.Unlock): (commands.Unlock(evse=1, connector=1),
                                     {"status": "Unlocked"}),
        ("1.6", commands.MessageTrigger): (commands.MessageTrigger(message="Heartbeat"),
                                           {"status": "Accepted"}),
        ("2.0.1", commands.MessageTrigger): (
            commands.MessageTrigger(message="StatusNotification", evse=1),
            {"status": "Accepted"}),
    },
)
