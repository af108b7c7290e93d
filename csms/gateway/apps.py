from importlib import import_module

from django.apps import AppConfig


class GatewayConfig(AppConfig):
    """The OCPP gateway: loads every functional block (csms/gateway/blocks/) into the message
    table, holds the table to the `ocpp` library's schemas, and tells the domain how each
    spoken version says its commands (stations.services.commands.Protocol)."""

    name = "csms.gateway"
    label = "gateway"
    verbose_name = "OCPP gateway"

    def ready(self) -> None:
        # Imported once every app's models are: the table and the blocks use the domain's.
        from csms.gateway import table
        from stations.services import commands

        for block in table.block_modules():
            import_module(f"csms.gateway.blocks.{block}")
        table.checked(table.TABLE)
        for version in table.SPOKEN:
            commands.protocol_register(table.VersionProtocol(table.TABLE, version))
