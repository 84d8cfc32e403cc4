"""The live feed's WebSocket: staff with the usage-event view permission (the session, through
AuthMiddlewareStack), read-only."""

from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from . import live
from .views import VIEW_PERMISSION

MAX_TENANT = 64


class LiveFeedConsumer(AsyncJsonWebsocketConsumer):
    """Sends `{"type": "ready"}` once subscribed, then `{"type": "events", "events": [...]}` as requests
    finish. `?tenant=<slug>` (or a `{"tenant": "<slug>"}` message; "" for all) narrows the feed."""

    watching = False
    tenant = ""

    async def connect(self):
        user = self.scope.get("user")
        staff = user is not None and user.is_authenticated and user.is_active and user.is_staff
        if staff and user is not None:  # every tenant's requests and cost go by: the dashboard's permission
            staff = await database_sync_to_async(user.has_perm)(VIEW_PERMISSION)
        if not staff or not same_origin(self.scope):
            await self.close(code=4403)  # before accept: the handshake is refused (HTTP 403)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.tenant = (query.get("tenant") or [""])[-1][:MAX_TENANT]
        self.group = live.group_name()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.watching = True
        tailer = live.tailer()
        tailer.watch()
        await tailer.wait_ready(timeout=5.0)
        await self.send_json({"type": "ready", "tenant": self.tenant or None})

    async def disconnect(self, code):
        if self.watching:
            self.watching = False
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await live.tailer().unwatch()

    @classmethod
    async def decode_json(cls, text_data):
        try:
            return await super().decode_json(text_data)
        except ValueError:  # not JSON: ignored
            return None

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and isinstance(content.get("tenant"), str):
            self.tenant = content["tenant"][:MAX_TENANT]
            await self.send_json({"type": "ready", "tenant": self.tenant or None})

    async def live_events(self, message):
        events = message["events"]
        if self.tenant:
            events = [event for event in events if event["tenant"] == self.tenant]
        if events:
            await self.send_json({"type": "events", "events": events})


def same_origin(scope) -> bool:
    """A browser's socket must come from a page of this site (or a CSRF-trusted origin), whatever
    ALLOWED_HOSTS says: the session cookie alone must not let another site read the feed."""
    headers = dict(scope.get("headers") or ())
    origin = headers.get(b"origin", b"").decode("latin-1")
    if not origin:
        return True  # not a browser (browsers always send it)
    host = headers.get(b"host", b"").decode("latin-1")
    return urlsplit(origin).netloc == host or origin in settings.CSRF_TRUSTED_ORIGINS
