"""Log identity: the keys services put in ``extra`` reach both log formats."""

from __future__ import annotations

import json
import logging

import pytest

from fleetmatch.logging import IDENTITY_KEYS, JsonFormatter, TextFormatter


def record(**extra: str) -> logging.LogRecord:
    return logging.makeLogRecord(
        {"name": "matchmaker.director", "levelname": "WARNING", "msg": "allocation failed", **extra}
    )


@pytest.mark.parametrize("key", ["queue", "match_id", "ticket_id", "gameserver", "fleet", "node"])
def test_every_identity_key_is_printed_in_text_and_json(key: str) -> None:
    assert key in IDENTITY_KEYS
    rec = record(**{key: "v1"})
    assert TextFormatter("%(message)s").format(rec) == f"allocation failed [{key}=v1]"
    assert json.loads(JsonFormatter().format(rec))[key] == "v1"


def test_a_match_line_carries_queue_and_match_id_in_order() -> None:
    rec = record(queue="duel", match_id="m1")
    assert TextFormatter("%(message)s").format(rec) == "allocation failed [queue=duel match_id=m1]"
    doc = json.loads(JsonFormatter().format(rec))
    assert (doc["queue"], doc["match_id"], doc["message"]) == ("duel", "m1", "allocation failed")
