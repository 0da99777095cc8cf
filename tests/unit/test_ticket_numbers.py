"""The ticket API's number check: the quick scan (no paths) agrees with the one naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleetmatch.errors import ValidationError
from matchmaker.api import _check_numbers, _numbers_fit


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param('{"players": [{"attributes": {"skill": 1500, "mode": "ranked"}}]}', None, id="fine"),
        pytest.param('{"a": [true, false, null, 1.5, -9223372036854775808]}', None, id="bools-and-int64-min"),
        pytest.param('{"a": {"b": 1e400}}', "a.b", id="inf"),
        pytest.param('{"a": [1, -1e400]}', "a[1]", id="minus-inf"),
        pytest.param('{"a": NaN}', "a", id="nan"),
        pytest.param('{"a": [{"b": 9223372036854775808}]}', "a[0].b", id="int64-max-plus-one"),
        pytest.param('{"a": -9223372036854775809}', "a", id="below-int64"),
        pytest.param("1" + "0" * 400, "<document>", id="huge-document"),
    ],
)
def test_the_quick_scan_agrees_with_the_named_check(raw: str, field: str | None) -> None:
    doc: Any = json.loads(raw)
    assert _numbers_fit(doc) is (field is None)
    if field is None:
        _check_numbers(doc)
    else:
        with pytest.raises(ValidationError) as info:
            _check_numbers(doc)
        assert info.value.field == field
