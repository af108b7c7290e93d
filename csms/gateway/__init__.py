"""Everything that knows OCPP exists. Outside this package nobody branches on the version."""

from types import ModuleType


def adapter_for(version: str) -> ModuleType:
    """The per-version adapter module: its HANDLERS (charger → us) and `commands` (us → charger)."""
    from csms.gateway import v16, v201

    return {"1.6": v16, "2.0.1": v201}[version]
