"""The only writers of the charging domain, one module per topic. Version-neutral: the gateway's
blocks translate OCPP 1.6 and 2.0.1 messages into these calls, and views and the API call them
too. Callers run them inside `transaction.atomic()` (the gateway wraps each charger message in
one), so a charger's message is stored whole or not at all, and events go out only after commit.

- presence: connections, signs of life, which process holds which station
- registration: boot, onboarding, an operator's registration decision, credentials
- connectors: the station's EVSEs and connectors
- authorization: how a charger must treat an ID token
- transactions: sessions, their messages and meter readings, transactions nobody will end
- batch: what every charger sends all day, from many chargers at once, stored set-based
- device: notifications and the device model / configuration
- commands: commands to chargers (persisted, routed, answered from the Call row), and the
  Protocol through which the gateway says them in each OCPP version's words
- local_lists: the local authorization lists kept on chargers
- message_log: frames outside a batch (errors, replies, commands)
- retention: what is deleted and when
"""
