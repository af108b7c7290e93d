"""One port for everything: HTTP goes to Django, WebSockets to the charger gateway or the
dashboard's live socket."""

import gc
import os
import sys
from importlib import import_module

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csms.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

if settings.SERVE_STATIC:
    # CSS, JS and htmx from the app itself, so `make run` and a plain daphne work with no proxy.
    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (after Django setup)
from django.urls import path, re_path  # noqa: E402

from csms import metrics  # noqa: E402
from csms.gateway.consumer import ChargerConsumer  # noqa: E402
from stations.web.consumers import dashboard_socket  # noqa: E402


async def refuse_socket(scope: dict, receive, send) -> None:
    """A WebSocket to a path nothing serves: refused at the handshake (the server answers 403),
    not an error (no route raises, which the servers answer 500 with a traceback)."""
    await receive()  # websocket.connect
    await send({"type": "websocket.close"})


websocket_urlpatterns = [
    # Chargers never get cookies or sessions: the gateway authenticates them itself. Whatever
    # the last segment holds (a newline too) reaches it, and it refuses ids no station can have.
    re_path(r"^ocpp/(?P<station_id>[\s\S]+)\Z", ChargerConsumer.as_asgi()),
    # The browser's live dashboard: session cookie and Origin checked (stations/web/consumers.py).
    path("ws/dashboard/", dashboard_socket),
    re_path(r"", refuse_socket),
]

application = ProtocolTypeRouter(
    {"http": django_asgi_app, "websocket": URLRouter(websocket_urlpatterns)}
)

# Django imports the views on the first HTTP request, a long pause during which the event loop
# answers no charger. Import them now, before any socket is accepted.
import_module(settings.ROOT_URLCONF)

# A server holding thousands of sockets has hundreds of thousands of live objects: a full
# collection would pause the event loop for every charger, and young collections would run
# thousands of times a second. What exists now lives as long as the process: keep it out of
# every collection, and collect young objects less often.
gc.freeze()
gc.set_threshold(*settings.GC_THRESHOLD)
metrics.time_collections()
# After each round trip to PostgreSQL the ORM thread waits for the GIL, which the event loop
# hands over only after the switch interval (settings.GIL_SWITCH_INTERVAL): a session's start
# of a dozen statements waits that long a dozen times beside a busy event loop.
sys.setswitchinterval(settings.GIL_SWITCH_INTERVAL)
