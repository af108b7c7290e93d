"""Everything that knows OCPP exists: the transport (consumer, frames, auth, liveness, the group
commit of writer and orm), the message table (table.py) and one module per functional block
(blocks/). Outside this package nobody branches on the version."""
