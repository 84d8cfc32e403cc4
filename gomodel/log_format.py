"""Log output: plain text, or one JSON object a line (LOG_FORMAT=json); the access log's own queued handler."""

import atexit
import logging
import logging.handlers
import queue
import time

import orjson


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "message"} plus a record's `fields` (the access log's), one line each."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def queued_console() -> logging.Handler:
    """A handler that only queues the record (no write on the event loop); a thread writes it to stderr. The
    queue handler formats the line (dictConfig gives it the formatter), the writer prints it as it is."""
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter("%(message)s"))
    records: queue.SimpleQueue = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, console)
    listener.start()
    atexit.register(listener.stop)
    return logging.handlers.QueueHandler(records)
