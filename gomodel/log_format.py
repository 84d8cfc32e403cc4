"""Log output: plain text, or one JSON object a line (LOG_FORMAT=json)."""

import logging
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
