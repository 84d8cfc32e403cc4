"""The ASGI entry point. /v1 and /health go straight to the gateway app (no Django request cycle:
zero thread hops on a warm request); everything else (admin, dashboard, API, websockets) is Django's
and Channels', built on the first such request: a worker that only serves /v1 never imports the
admin's views, DRF's, drf-spectacular's or Channels' routing."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gomodel.settings")
django.setup(set_prefix=False)  # the ORM, for the gateway's key and provider lookups

from gomodel.gateway.app import gateway_app, handles, lifespan  # noqa: E402  (needs Django set up)

_django_router = None


def django_router():
    global _django_router
    if _django_router is None:
        from channels.auth import AuthMiddlewareStack
        from channels.routing import ProtocolTypeRouter, URLRouter
        from channels.security.websocket import AllowedHostsOriginValidator
        from django.conf import settings
        from django.core.asgi import get_asgi_application

        from gomodel.body_limit import BodySizeLimit
        from gomodel.dashboard.routing import websocket_urlpatterns

        _django_router = ProtocolTypeRouter({
            # Django reads a whole body before it routes: cap it as it streams in (gomodel/body_limit.py).
            "http": BodySizeLimit(get_asgi_application(), settings.DJANGO_BODY_SIZE_LIMIT),
            # The dashboard's live feed: staff sessions only (checked by the consumer), same-origin pages only.
            # types-channels wants its own _ExtendedURLPattern, which django's path() cannot be typed as.
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),  # type: ignore[arg-type]
        })
    return _django_router


async def application(scope, receive, send):
    kind = scope["type"]
    if kind == "http" and handles(scope["path"]):
        return await gateway_app(scope, receive, send)
    if kind == "lifespan":
        return await lifespan(scope, receive, send)
    return await django_router()(scope, receive, send)
