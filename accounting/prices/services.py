"""Writes to the price table (each in one transaction with its audit row)."""

from django.db import transaction

from ..audit.services import record
from ..models import ModelPrice


@transaction.atomic
def do_create_price(actor: str, data: dict) -> ModelPrice:
    price = ModelPrice.objects.create(**data)
    record(actor, "create", price, data)
    return price
