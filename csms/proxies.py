"""Who is on the other end of a connection: the peer's address, and the headers of the
TLS-terminating proxies we trust (settings.TRUSTED_PROXIES), believed from them only."""

from django.conf import settings


def header(scope: dict, name: bytes) -> str:
    """An ASGI scope's header, decoded; "" if it has none."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def from_trusted_proxy(scope: dict) -> bool:
    return ((scope.get("client") or ("", 0))[0] or "") in settings.TRUSTED_PROXIES


def client_address(scope: dict) -> str:
    """The peer's address; a configured proxy's X-Forwarded-For is believed, nobody else's."""
    host = (scope.get("client") or ("", 0))[0] or ""
    if host in settings.TRUSTED_PROXIES:
        forwarded = header(scope, b"x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return host
