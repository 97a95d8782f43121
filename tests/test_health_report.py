"""HealthReport renderings: seed dict, IETF health+json, terminal text."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from buttress.errors import ValidationError
from buttress.health import ComponentStatus, HealthReport, Status, render_text

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _report(**components: ComponentStatus) -> HealthReport:
    return HealthReport.from_components(
        components, version="1.2.3", timestamp=T0, release_id="1.2.3-abc"
    )


def test_to_dict_has_the_seed_keys() -> None:
    report = _report(
        db=ComponentStatus(Status.HEALTHY, latency_ms=1.23456, checked_at=T0),
        cache=ComponentStatus(Status.DEGRADED, "timed out after 5 s", latency_ms=5000),
    )
    assert report.to_dict() == {
        "status": "degraded",
        "timestamp": "2024-05-01T12:00:00+00:00",
        "version": "1.2.3",
        "components": {
            "db": {"status": "healthy", "latencyMs": 1.235, "message": None},
            "cache": {"status": "degraded", "latencyMs": 5000.0, "message": "timed out after 5 s"},
        },
    }
    json.dumps(report.to_dict())


def test_health_json_follows_the_ietf_draft() -> None:
    report = _report(
        db=ComponentStatus(
            Status.HEALTHY, "fine", latency_ms=2.0, checked_at=T0, component_type="datastore"
        ),
        disk=ComponentStatus(
            Status.UNHEALTHY,
            "1% free",
            latency_ms=0.5,
            measurement="diskFree",
            observed_value=1024,
            observed_unit="bytes",
        ),
    )
    body = report.to_health_json()
    assert body["status"] == "fail"
    assert body["version"] == "1.2.3"
    assert body["releaseId"] == "1.2.3-abc"
    assert body["output"] == "not healthy: disk"
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert set(checks) == {"db:responseTime", "disk:responseTime", "disk:diskFree"}
    assert checks["db:responseTime"] == [
        {
            "status": "pass",
            "componentType": "datastore",
            "time": "2024-05-01T12:00:00+00:00",
            "observedValue": 2.0,
            "observedUnit": "ms",
        }
    ]  # output omitted on pass
    assert checks["disk:diskFree"] == [
        {"status": "fail", "output": "1% free", "observedValue": 1024, "observedUnit": "bytes"}
    ]
    json.dumps(body)


@pytest.mark.parametrize(
    ("status", "word", "http"),
    [
        (Status.HEALTHY, "pass", 200),
        (Status.DEGRADED, "warn", 200),
        (Status.UNHEALTHY, "fail", 503),
    ],
)
def test_status_words_and_http(status: Status, word: str, http: int) -> None:
    report = _report(c=ComponentStatus(status))
    assert report.to_health_json()["status"] == word
    assert report.http_status == http


def test_release_id_defaults_to_version_and_absent_keys_are_omitted() -> None:
    report = HealthReport.from_components({}, version="9", timestamp=T0)
    assert report.to_health_json() == {
        "status": "pass",
        "version": "9",
        "releaseId": "9",
        "checks": {},
    }
    bare = HealthReport.from_components({}, version=None, timestamp=T0)
    assert bare.to_health_json() == {"status": "pass", "checks": {}}


def test_render_text_plain_and_colour() -> None:
    report = _report(
        db=ComponentStatus(Status.HEALTHY, latency_ms=1.5),
        mail=ComponentStatus(Status.UNHEALTHY, "SMTPError: refused", critical=False),
    )
    plain = render_text(report, color=False)
    assert "\x1b[" not in plain
    assert plain.splitlines()[0].startswith("health: DEGRADED  version 1.2.3")
    assert "[FAIL] mail" in plain
    assert "(non-critical)  SMTPError: refused" in plain
    assert "[ok  ] db" in plain
    coloured = render_text(report, color=True)
    assert "\x1b[33mDEGRADED\x1b[0m" in coloured
    assert "no checks registered" in render_text(_report(), color=False)


def test_component_status_validation_and_shortcuts() -> None:
    assert ComponentStatus.healthy().status is Status.HEALTHY
    assert ComponentStatus.degraded("x").message == "x"
    assert ComponentStatus.unhealthy().status is Status.UNHEALTHY
    with pytest.raises(ValidationError, match="latency_ms"):
        ComponentStatus(Status.HEALTHY, latency_ms=-1)
    with pytest.raises(TypeError):
        ComponentStatus("healthy")  # type: ignore[arg-type]
