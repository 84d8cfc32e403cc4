"""A call's labels and end user, read once for every endpoint (the pipeline calls `attribute` after the body is
validated, before routing): the key's labels, then the request's — `x-gomodel-labels: team:search,env:prod` and
the body's labels object where its protocol has one (OpenAI's `metadata`) — later sources winning a name; the
end user from `x-gomodel-user`, else where the protocol's body names it (`user`, Anthropic's
`metadata.user_id`). Out of bounds (accounting/labels.py) → 400 naming the offending label, before anything is
counted, forwarded or recorded."""

from dataclasses import dataclass, field
from typing import Any

from accounting.labels import MAX_LABELS, LabelError, check_labels, check_user, parse_labels

from .auth import Principal
from .errors import INVALID_REQUEST, GatewayError
from .http import Request

LABELS_HEADER = b"x-gomodel-labels"
USER_HEADER = b"x-gomodel-user"


@dataclass(frozen=True, slots=True)
class Attribution:
    labels: dict[str, str] = field(default_factory=dict)
    user: str = ""


NONE = Attribution()


def attribute(req: Request, principal: Principal, body_labels: Any, body_user: Any, labels_param: str,
              user_param: str) -> Attribution:
    """The call's attribution; GatewayError 400 for labels or a user outside the bounds. `body_labels` and
    `body_user`: what the protocol's body holds there (None: nothing); the params name those fields."""
    labels = dict(principal.labels)
    param = labels_param
    try:
        if body_labels is not None:
            labels.update(check_labels(body_labels, labels_param))
        header = req.header(LABELS_HEADER)
        if header is not None:
            param = LABELS_HEADER.decode()
            labels.update(parse_labels(header, param))
        if len(labels) > MAX_LABELS:
            raise LabelError(f"The key's and the request's labels together are {len(labels)}; at most "
                             f"{MAX_LABELS} are allowed.")
    except LabelError as err:
        raise GatewayError(400, INVALID_REQUEST, str(err), param, "invalid_labels") from None
    header = req.header(USER_HEADER)
    user, param = (header, USER_HEADER.decode()) if header is not None else (body_user, user_param)
    try:
        user = check_user(user, param) if user is not None else ""
    except LabelError as err:
        raise GatewayError(400, INVALID_REQUEST, str(err), param, "invalid_user") from None
    return Attribution(labels, user)
