"""`gomodel.asgi:application` with the upstream client GOMODEL_HTTP_TRANSPORT names (bench/transports.py);
bench/run.py serves this module instead of the gateway's own when it compares transports."""

import os

from gomodel.asgi import application  # noqa: F401  (sets Django up)
from gomodel.gateway import runtime

from bench.transports import TRANSPORTS, new_client

_kind = os.environ.get("GOMODEL_HTTP_TRANSPORT", "aiohttp")
if _kind not in TRANSPORTS:  # fail at start, not on the first request
    raise ValueError(f"GOMODEL_HTTP_TRANSPORT must be one of {', '.join(TRANSPORTS)}, not {_kind!r}")
runtime.new_client = lambda: new_client(_kind)  # each process's Runtime is made on its first request
