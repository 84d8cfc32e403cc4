from django.urls import path

from .consumers import LiveFeedConsumer

websocket_urlpatterns = [
    # django-stubs' path() takes views only; channels routes consumers' ASGI apps with it (its documented use).
    path("dashboard/ws/live/", LiveFeedConsumer.as_asgi()),  # type: ignore[arg-type]
]
