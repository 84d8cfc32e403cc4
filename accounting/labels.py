"""Labels (`team:search`) and end users (`user-42`): the attribution a request carries besides its key.

One set of rules for every place that takes them — an API key's labels (admin, management API,
`create_api_key --labels`) and a request's (`x-gomodel-labels`, the body's `metadata`, the end user) — so
that what the gateway accepts is what the admin can store, and what the reports can group by. Bounded, since
every label lands on every usage row: at most MAX_LABELS labels, each name and value at most MAX_LENGTH
printable characters; a name is never empty and never holds ':' or ',' (the `name:value,…` text form).
"""

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError

MAX_LABELS = 16
MAX_LENGTH = 64


class LabelError(ValueError):
    """Labels or an end user outside the rules; the message names the offending one."""


def _text(value: object, what: str, *, name: bool = False) -> str:
    if not isinstance(value, str):
        raise LabelError(f"{what} must be a string.")
    if len(value) > MAX_LENGTH:
        raise LabelError(f"{what} is longer than {MAX_LENGTH} characters.")
    if not value.isprintable():
        raise LabelError(f"{what} holds a character that is not printable.")
    if name and (not value or ":" in value or "," in value):
        raise LabelError(f"{what} must be non-empty, without ':' or ','.")
    return value


def check_labels(labels: object, where: str = "labels") -> dict[str, str]:
    """A labels object (name → string value) as it may be stored; LabelError otherwise."""
    if not isinstance(labels, dict):
        raise LabelError(f"{where} must be an object of string values.")
    if len(labels) > MAX_LABELS:
        raise LabelError(f"{where} has {len(labels)} labels; at most {MAX_LABELS} are allowed.")
    for name, value in labels.items():
        _text(name, f"The label name '{str(name)[:MAX_LENGTH]}' in {where}", name=True)
        _text(value, f"The value of label '{name}' in {where}")
    return labels


def parse_labels(text: str, where: str = "labels") -> dict[str, str]:
    """`team:search,env:prod` (spaces around items ignored; the last of a repeated name wins)."""
    labels: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, colon, value = item.partition(":")
        if not colon:
            raise LabelError(f"The label '{item[:MAX_LENGTH]}' in {where} must be written as name:value.")
        labels[name.strip()] = value.strip()
        if len(labels) > MAX_LABELS:
            raise LabelError(f"{where} has more than {MAX_LABELS} labels.")
    return check_labels(labels, where)


def check_user(user: object, where: str = "user") -> str:
    """An end user's id as it may be stored ("" for none); LabelError otherwise."""
    return _text(user, f"The end user in {where}")


def format_labels(labels: dict[str, str]) -> str:
    return ",".join(f"{name}:{value}" for name, value in labels.items())


MAX_LABEL_LIMITS = 64
LIMIT_MAX = 2**31 - 1


def check_label_limits(value: object) -> dict[str, dict[str, int]]:
    """A tenant's rate limits per label: {"team:search": {"rpm": 100, "tpm": 50000}} (either may be left out)."""
    if not isinstance(value, dict):
        raise LabelError("Label limits must be an object: {\"name:value\": {\"rpm\": N, \"tpm\": N}}.")
    if len(value) > MAX_LABEL_LIMITS:
        raise LabelError(f"At most {MAX_LABEL_LIMITS} labels may have limits.")
    for label, limits in value.items():
        if not isinstance(label, str) or len(parse_labels(label, "label limits")) != 1 or "," in label:
            raise LabelError(f"'{str(label)[:MAX_LENGTH]}' is not one label written as name:value.")
        if not isinstance(limits, dict) or not limits or set(limits) - {"rpm", "tpm"}:
            raise LabelError(f"The limits of '{label}' must be an object with 'rpm' and/or 'tpm'.")
        for name, number in limits.items():
            if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= LIMIT_MAX:
                raise LabelError(f"'{name}' of '{label}' must be a whole number from 1.")
    return value


def validate_label_limits(value: object) -> None:
    try:
        check_label_limits(value)
    except LabelError as err:
        raise ValidationError(str(err)) from None


def validate_key_labels(value: object) -> None:
    """The model field's validator (admin and management API)."""
    try:
        check_labels(value)
    except LabelError as err:
        raise ValidationError(str(err)) from None


MAX_LABEL_BUDGETS = 64
BUDGET_PERIODS = ("daily", "weekly", "monthly")  # not "total": a label's spend is summed from the stored events


def check_label_budgets(value: object) -> dict[str, dict[str, str]]:
    """A tenant's budgets per label: {"team:search": {"usd": "200", "period": "monthly"}} (period: daily, weekly
    or monthly; "monthly" if left out). `usd` a decimal string or number ≥ 0 with at most 10 decimals."""
    if not isinstance(value, dict):
        raise LabelError("Label budgets must be an object: {\"name:value\": {\"usd\": \"200\", \"period\": "
                         "\"monthly\"}}.")
    if len(value) > MAX_LABEL_BUDGETS:
        raise LabelError(f"At most {MAX_LABEL_BUDGETS} labels may have budgets.")
    for label, budget in value.items():
        parsed = parse_labels(label, "label budgets") if isinstance(label, str) and "," not in label else {}
        if len(parsed) != 1 or format_labels(parsed) != label:  # as written, no spaces around: it is matched so
            raise LabelError(f"'{str(label)[:MAX_LENGTH]}' is not one label written as name:value.")
        if not isinstance(budget, dict) or "usd" not in budget or set(budget) - {"usd", "period"}:
            raise LabelError(f"The budget of '{label}' must be an object with 'usd' and optionally 'period'.")
        usd = budget["usd"]
        try:
            if isinstance(usd, bool) or not isinstance(usd, (str, int, float)):
                raise InvalidOperation
            amount = Decimal(str(usd))
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or amount < 0 or amount >= Decimal("1e10") \
                or amount != amount.quantize(Decimal("1e-10")):
            raise LabelError(f"'usd' of '{label}' must be a decimal number of USD from 0, at most 10 decimals.")
        if budget.get("period", "monthly") not in BUDGET_PERIODS:
            raise LabelError(f"'period' of '{label}' must be one of {', '.join(BUDGET_PERIODS)}.")
    return value


def validate_label_budgets(value: object) -> None:
    try:
        check_label_budgets(value)
    except LabelError as err:
        raise ValidationError(str(err)) from None
