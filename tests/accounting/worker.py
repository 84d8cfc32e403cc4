"""A real Celery worker with embedded beat (`celery -A gomodel.celery:app worker -B`, solo pool), run as a
subprocess by the crash tests.

With KILL_AT set it stops dead at one point of its first batch, after writing its pid to KILL_MARKER,
so that the test can SIGKILL it exactly there:

- `in_transaction`: the batch's events are inserted and added to the roll-ups, the transaction is
  still open (a worker dying mid-batch: the database must roll all of it back);
- `before_ack`: the transaction is committed, the stream entries are not acknowledged (a worker dying
  between commit and XACK: the entries are delivered again and must not be counted twice).
"""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gomodel.settings")

import django  # noqa: E402

django.setup()

from accounting.usage import drain  # noqa: E402


def hang():
    Path(os.environ["KILL_MARKER"]).write_text(str(os.getpid()))
    time.sleep(120)
    sys.exit(3)


point = os.environ.get("KILL_AT")
if point == "in_transaction":
    add_to_rollups = drain.add_to_rollups

    def add_then_hang(events):
        add_to_rollups(events)
        hang()

    drain.add_to_rollups = add_then_hang
elif point == "before_ack":
    drain.ack = lambda client, ids, *budget: hang()
elif point:
    raise SystemExit(f"unknown KILL_AT {point!r}")

from gomodel.celery import app  # noqa: E402

app.worker_main(["worker", "--pool", "solo", "-B", "-s", os.environ["BEAT_SCHEDULE_FILE"], "--loglevel", "INFO",
                 "-n", f"usage-test-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
                 "--without-heartbeat"])
