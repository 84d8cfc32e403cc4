"""The ASGI entry point. /v1 and /health go straight to the gateway app (no Django request cycle:
zero thread hops on a warm request); everything else (admin, dashboard, websockets) is Django's."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gomodel.settings")
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from gomodel.body_limit import BodySizeLimit  # noqa: E402

from gomodel.dashboard.routing import websocket_urlpatterns  # noqa: E402
from gomodel.gateway.app import gateway_app, handles, lifespan  # noqa: E402

django_router = ProtocolTypeRouter({
    # Django reads a whole body before it routes: cap it as it streams in (gomodel/body_limit.py).
    "http": BodySizeLimit(django_application, settings.DJANGO_BODY_SIZE_LIMIT),
    # The dashboard's live feed: staff sessions only (checked by the consumer), same-origin pages only.
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})


async def application(scope, receive, send):
    kind = scope["type"]
    if kind == "http" and handles(scope["path"]):
        return await gateway_app(scope, receive, send)
    if kind == "lifespan":
        return await lifespan(scope, receive, send)
    return await django_router(scope, receive, send)
