"""accounting.prices.money: the one way costs are written out (reports, admin, dashboard, live feed)."""

from decimal import Decimal

import pytest

from accounting.prices import money


@pytest.mark.parametrize("amount, shown", [
    (None, None), (Decimal("0"), "0"), (Decimal("0.000"), "0"), (Decimal("1.2300"), "1.23"),
    (Decimal("1E-7"), "0.0000001"), (Decimal("1200"), "1200"),
])
def test_usd(amount, shown):
    assert money.usd(amount) == shown


def test_cost_string_from_roll_up_units():
    assert money.cost_string(135_000, 3) == "0.0000135"
    assert money.cost_string(0, 2) == "0"
    assert money.cost_string(0, 0) is None  # unknown, not free
