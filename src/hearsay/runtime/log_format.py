"""How ``hearsay serve`` writes its log: ``--log-format text`` (default) or ``json``.

Every record is one line: a message's control characters (a newline in a key name, a peer's
string) are escaped, so that input can neither split a record nor forge another. ``json`` puts
a traceback inside its record too (one JSON object a line, for log shippers); ``text`` prints
it below the line, as Python does. Secrets never reach the log: no record carries the
password or the keyring (the settings are not logged).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Final, TextIO

LOG_FORMATS: Final = ("text", "json")
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_ESCAPES: Final = {i: f"\\x{i:02x}" for i in range(32)} | {10: "\\n", 13: "\\r", 9: "\\t"}


def one_line(message: str) -> str:
    """``message`` with its control characters escaped."""
    return message.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """The classic ``time LEVEL logger: message`` line, the message on one line."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = one_line(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object a record: time (UTC, ISO 8601), level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json.dumps(fields)


def configure_logging(level: str, log_format: str, stream: TextIO = sys.stderr) -> None:
    """Sends every record at ``level`` and above to ``stream`` in ``log_format``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
