"""The one way money is written out: USD as a plain decimal string (no exponent, no trailing zeros), and
None — unknown, not free — when nothing in the sum had a price."""

from decimal import Decimal

COST_EXPONENT = -10  # roll-ups store cost as an integer number of 1e-10 USD (UsageDaily.cost_e10)


def usd(amount: Decimal | None) -> str | None:
    if amount is None:
        return None
    amount = amount.normalize()
    return format(amount, "f") if amount else "0"


def cost_string(cost_e10: int, priced_requests: int) -> str | None:
    """A roll-up's cost (integer 1e-10 USD); None when no request in it had a known price."""
    if not priced_requests:
        return None
    return usd(Decimal(cost_e10 or 0).scaleb(COST_EXPONENT))
