"""Log lines of ``gatectl run``: ``--log-format json`` writes one JSON object a line."""

from __future__ import annotations

import json
import logging

import pytest

from gatectl.engine.loop import JsonFormatter
from gatectl.engine.reconcile import LogFields

FIELDS = {
    "msg": "decision",
    "gate": "team-a/triage",
    "workflow": 'x"y',
    "decision": "hold",
    "phase": "Progressing",
    "share": 0.05,
    "next_share": 0.05,
    "reasons": ["needs ~1,200 more requests", "é"],
}


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("gatectl.controller", logging.INFO, __file__, 1, msg, args, None)


def test_a_decision_s_fields_are_the_line_s_fields_in_json() -> None:
    line = json.loads(JsonFormatter().format(record("%s", LogFields(FIELDS))))
    assert {k: line[k] for k in ("level", "logger")} == {
        "level": "INFO",
        "logger": "gatectl.controller",
    }
    assert {k: v for k, v in line.items() if k not in ("time", "level", "logger")} == FIELDS


@pytest.mark.parametrize(
    ("msg", "args", "expected"),
    [
        pytest.param("%s", (LogFields(FIELDS),), json.dumps(FIELDS), id="fields-as-json-text"),
        pytest.param("controller started (%s)", ("file mode",), "controller started (file mode)"),
        pytest.param("%s", ({"a": 1},), "{'a': 1}", id="a-plain-mapping-is-not-fields"),
    ],
)
def test_in_text_format_a_line_is_its_message(msg: str, args: tuple[object], expected: str) -> None:
    assert logging.Formatter("%(message)s").format(record(msg, *args)) == expected


@pytest.mark.parametrize(
    ("msg", "args", "merged"),
    [
        pytest.param("controller started", (), {"msg": "controller started"}, id="text"),
        pytest.param("%s", (json.dumps({"msg": "x", "n": 1}),), {"msg": "x", "n": 1}, id="json"),
        pytest.param("%s", ({"a": 1},), {"msg": "{'a': 1}"}, id="plain-mapping"),
        pytest.param(
            "[%s]", (LogFields(FIELDS),), {"msg": f"[{json.dumps(FIELDS)}]"}, id="in-text"
        ),
    ],
)
def test_other_messages_are_a_msg_or_a_json_object_merged(
    msg: str, args: tuple[object], merged: dict[str, object]
) -> None:
    line = json.loads(JsonFormatter().format(record(msg, *args)))
    assert {k: v for k, v in line.items() if k not in ("time", "level", "logger")} == merged
