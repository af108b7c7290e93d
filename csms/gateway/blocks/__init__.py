"""One module per OCPP functional block, both versions side by side (1.6 profiles and the
Security Whitepaper; 2.0.1 and 2.1 functional blocks A to S). Each registers its messages in the
message table (csms/gateway/table.py) when it is imported: handlers of what chargers send,
builders of what the domain asks us to send, readers of the chargers' answers, and the actions
it declares unsupported. A block knows no socket; it calls the domain's services.

The modules are loaded by csms.gateway's app (apps.py); nothing else imports them.
"""
