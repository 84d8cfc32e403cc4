"""The ASGI entry point. /v1 and /health go straight to the gateway app (no Django request cycle:
zero thread hops on a warm request); everything else (admin, dashboard, websockets) is Django's."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gomodel.settings")
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up)

from gomodel.gateway.app import gateway_app, handles, lifespan  # noqa: E402

django_router = ProtocolTypeRouter({"http": django_application})


async def application(scope, receive, send):
    kind = scope["type"]
    if kind == "http" and handles(scope["path"]):
        return await gateway_app(scope, receive, send)
    if kind == "lifespan":
        return await lifespan(scope, receive, send)
    return await django_router(scope, receive, send)
