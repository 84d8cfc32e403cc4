"""A saved or deleted key, tenant or provider config clears the hot path's caches in every gateway
process: at once in this one, and through a Redis message in the others."""

import logging

import redis
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

log = logging.getLogger(__name__)


def publish(what: str) -> None:
    from .runtime import invalidate_local

    invalidate_local(what)
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2.0, socket_connect_timeout=2.0)
        try:
            client.publish(settings.INVALIDATION_CHANNEL, what)
        finally:
            client.close()
    except redis.RedisError as exc:
        log.warning("could not publish cache invalidation '%s' (%s); other processes' key caches catch up "
                    "within AUTH_CACHE_TTL, their model registries at the next invalidation or restart", what, exc)


def _on_change(what):
    def handler(sender, **kwargs):
        transaction.on_commit(lambda: publish(what))

    return handler


_keys_changed = _on_change("keys")
_providers_changed = _on_change("providers")
_prices_changed = _on_change("prices")


def connect():
    from accounting.models import ApiKey, ModelPrice, Tenant
    from providers.models import ModelAlias, ProviderConfig, ProviderKey

    for model, handler in ((ApiKey, _keys_changed), (Tenant, _keys_changed), (ProviderConfig, _providers_changed),
                           (ProviderKey, _providers_changed), (ModelAlias, _providers_changed),
                           (ModelPrice, _prices_changed)):
        post_save.connect(handler, sender=model, dispatch_uid=f"invalidate-{model.__name__}-save")
        post_delete.connect(handler, sender=model, dispatch_uid=f"invalidate-{model.__name__}-delete")
