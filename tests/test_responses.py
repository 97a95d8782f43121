from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress import responses
from buttress.errors import ValidationError
from buttress.testing import FakeClock

CLOCK = FakeClock(start=datetime(2025, 3, 1, 12, 0, tzinfo=UTC))


def test_success_shape() -> None:
    body = responses.success({"id": 1}, {"page": 2}, request_id="r-1", clock=CLOCK)
    assert body == {
        "success": True,
        "data": {"id": 1},
        "meta": {"page": 2, "request_id": "r-1", "timestamp": "2025-03-01T12:00:00Z"},
    }


def test_request_id_is_generated_when_absent() -> None:
    first = responses.success()["meta"]["request_id"]
    second = responses.success()["meta"]["request_id"]
    assert first != second
    assert len(first) == 32


def test_error_shape_with_details_and_fields() -> None:
    body = responses.error(
        "INVALID_INPUT", "name is required", {"field": "name"}, request_id="r", clock=CLOCK
    )
    assert body["success"] is False
    assert body["error"] == {
        "code": "INVALID_INPUT",
        "message": "name is required",
        "details": {"field": "name"},
    }
    assert body["meta"]["request_id"] == "r"


@pytest.mark.parametrize("code", ["", "lower", "HAS SPACE", "X" * 65, "1STARTS_WITH_DIGIT"])
def test_error_refuses_bad_codes(code: str) -> None:
    with pytest.raises(ValidationError, match="code"):
        responses.error(code, "message")


def test_error_refuses_empty_message() -> None:
    with pytest.raises(ValidationError, match="message"):
        responses.error("X", "")


def test_not_found_and_unavailable() -> None:
    assert responses.not_found("user 7")["error"] == {
        "code": "NOT_FOUND",
        "message": "user 7 not found",
    }
    down = responses.unavailable(retry_after=2.1)["error"]
    assert down["code"] == "SERVICE_UNAVAILABLE"
    assert down["retry_after"] == 3
    assert "retry_after" not in responses.unavailable()["error"]


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_rate_limited_rounds_retry_after_up(retry_after: float) -> None:
    body = responses.rate_limited(retry_after)
    assert body["error"]["code"] == "RATE_LIMITED"
    assert body["error"]["retry_after"] == math.ceil(retry_after)
    json.dumps(body)  # always serialisable


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_rate_limited_refuses_non_finite(bad: float) -> None:
    with pytest.raises(ValidationError, match="retry_after"):
        responses.rate_limited(bad)
