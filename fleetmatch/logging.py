"""Logging configuration as data; only the CLI applies it.

Identity travels in ``extra`` under fixed keys (``IDENTITY_KEYS``: ``gameserver``, ``fleet``, ``node``,
``queue``, ``ticket_id``, ``match_id``); the text format appends them, the JSON format emits them as
fields. A key left out of ``IDENTITY_KEYS`` is silently dropped by both formats.
"""

from __future__ import annotations

import json
import logging
import logging.config
from typing import Any

IDENTITY_KEYS = ("gameserver", "fleet", "node", "queue", "ticket_id", "match_id")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{k}={getattr(record, k)}" for k in IDENTITY_KEYS if hasattr(record, k))
        return f"{line} [{ids}]" if ids and ids not in line else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in IDENTITY_KEYS:
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def log_config(level: str = "INFO", fmt: str = "text") -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "text": {"()": TextFormatter, "format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"},
            "json": {"()": JsonFormatter},
        },
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": fmt, "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {"aiohttp.access": {"level": "WARNING"}},
    }


def configure(level: str = "INFO", fmt: str = "text") -> None:
    logging.config.dictConfig(log_config(level, fmt))
