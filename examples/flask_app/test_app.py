"""Drives the Flask example through Flask's test client, on a SQLite file.

Time is a ``FakeClock``: retries, the breaker's recovery and the rate limiter's
window move only when a test says so, so nothing sleeps.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from buttress.lifecycle import StartupError
from buttress.log import configure_logging
from buttress.testing import FakeClock

from .app import Inventory, create_app, services_of

SECRET = "sk-live-7f3a9c1e5b2d"

Start = Callable[[], Flask]


@pytest.fixture
def logs() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(json=True, level="DEBUG", stream=stream)
    return stream


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    return {
        "BUTTRESS_DSN": f"sqlite:///{tmp_path / 'app.db'}",
        "APP_ENV": "staging",
        "APP_VERSION": "1.2.3",
        "INVENTORY_API_KEY": SECRET,
        "RATE_LIMIT": "100",
        "RETRY_DELAY": "0.5",
        # A FakeClock's sleep returns at once, so a polling loop would spin: no polling.
        "FLAGS_REFRESH_SECONDS": "0",
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def inventory() -> Inventory:
    fake = Inventory()
    fake.expected_key = SECRET  # the app must pass the secret from its ConfigStore
    return fake


@pytest.fixture
def start(environ: dict[str, str], clock: FakeClock, inventory: Inventory) -> Iterator[Start]:
    """Start the app (as often as a test wants); every instance is shut down after."""
    started: list[Flask] = []

    def start() -> Flask:
        app = create_app(environ, clock=clock, inventory=inventory)
        started.append(app)
        return app

    yield start
    for app in started:
        services = services_of(app)
        if not services.shutdown.started:
            services.close("test finished")


def stop(app: Flask) -> None:
    assert services_of(app).close("restart").completed


def test_health_endpoints_answer_health_json(start: Start) -> None:
    client = start().test_client()
    full = client.get("/health")
    assert full.status_code == 200
    assert full.headers["content-type"].startswith("application/health+json")
    body = full.get_json()
    assert body["status"] == "pass"
    assert body["version"] == "1.2.3"
    assert {key.split(":")[0] for key in body["checks"]} >= {"database", "inventory"}
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200


def test_rate_limit_answers_429_with_envelope_and_retry_after(
    start: Start, environ: dict[str, str], clock: FakeClock, inventory: Inventory
) -> None:
    environ["RATE_LIMIT"] = "5"
    client = start().test_client()
    for _ in range(5):
        assert client.get("/quote/A-1").status_code == 200
    refused = client.get("/quote/A-1")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.get_json()["success"] is False
    assert refused.get_json()["error"]["code"] == "RATE_LIMITED"
    assert inventory.calls == 5  # the refusal never reached the view
    assert client.get("/health").status_code == 200  # health is outside the limiter
    clock.advance(60)
    assert client.get("/quote/A-1").status_code == 200


def test_rate_limit_state_is_shared_through_the_sqlite_file(
    start: Start, environ: dict[str, str]
) -> None:
    environ["RATE_LIMIT"] = "3"
    first, second = start().test_client(), start().test_client()  # two "workers"
    assert [first.get("/quote/A-1").status_code for _ in range(2)] == [200, 200]
    assert second.get("/quote/A-1").status_code == 200
    assert second.get("/quote/A-1").status_code == 429


def test_breaker_opens_after_failures_and_recovers(
    start: Start, clock: FakeClock, inventory: Inventory
) -> None:
    client = start().test_client()
    assert client.get("/quote/A-1").status_code == 200
    inventory.down = True
    inventory.calls = 0

    first = client.get("/quote/A-1")  # two attempts (one retry), both fail
    assert first.status_code == 502
    assert first.get_json()["error"]["code"] == "UPSTREAM_FAILED"
    second = client.get("/quote/A-1")  # third failure opens the circuit mid-retry
    assert second.status_code == 503
    assert inventory.calls == 3
    assert second.get_json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert int(second.headers["Retry-After"]) == 30

    third = client.get("/quote/A-1")  # refused at once: the dependency is spared
    assert third.status_code == 503
    assert inventory.calls == 3
    assert client.get("/health").get_json()["status"] == "warn"  # non-critical: degraded

    inventory.down = False
    clock.advance(30)  # recovery timeout: the next call is a probe
    assert client.get("/quote/A-1").status_code == 200
    assert client.get("/health").get_json()["status"] == "pass"


def test_flag_toggled_through_the_api_changes_prices(start: Start) -> None:
    app = start()
    client = app.test_client()
    before = client.get("/quote/B-7").get_json()["data"]
    assert before["discounted"] is False
    assert client.put("/admin/flags/bulk-discount?enabled=true").status_code == 200
    after = client.get("/quote/B-7").get_json()["data"]
    assert after["discounted"] is True
    assert after["price"] == before["price"] * 9 // 10
    assert client.put("/admin/flags/nope?enabled=true").status_code == 404
    stop(app)

    restarted = start().test_client()  # the flag lives in the database
    assert restarted.get("/quote/B-7").get_json()["data"]["discounted"] is True


def test_maintenance_mode_set_in_config_answers_503(start: Start) -> None:
    app = start()
    client = app.test_client()
    services = services_of(app)
    services.portal.call(services.config.set_maintenance_mode(True, updated_by="ops"))
    down = client.get("/quote/A-1")
    assert down.status_code == 503
    assert down.headers["Retry-After"] == "60"
    services.portal.call(services.config.set_maintenance_mode(False, updated_by="ops"))
    assert client.get("/quote/A-1").status_code == 200


def test_deployment_is_recorded_once_per_version(start: Start, environ: dict[str, str]) -> None:
    app = start()
    first = app.test_client().get("/admin/deployment").get_json()["data"]
    assert first["version"] == "1.2.3"
    assert first["environment"] == "staging"
    stop(app)
    app = start()  # a restart is not a deployment
    assert app.test_client().get("/admin/deployment").get_json()["data"]["id"] == first["id"]
    stop(app)
    environ["APP_VERSION"] = "1.3.0"
    client = start().test_client()
    upgraded = client.get("/admin/deployment").get_json()["data"]
    assert upgraded["version"] == "1.3.0"
    assert upgraded["id"] != first["id"]
    assert client.get("/health").get_json()["version"] == "1.3.0"


def test_secret_never_appears_in_responses_or_logs(
    start: Start, inventory: Inventory, logs: io.StringIO
) -> None:
    app = start()
    client = app.test_client()
    seen: list[str] = []
    listing = client.get("/admin/config")
    assert listing.status_code == 200
    entries = {e["key"]: e for e in listing.get_json()["data"]}
    assert entries["inventory_api_key"]["value"] == "***"
    assert entries["inventory_api_key"]["sensitive"] is True
    seen.append(listing.get_data(as_text=True))
    seen.append(client.get("/quote/C-3").get_data(as_text=True))  # used the secret
    inventory.down = True
    for _ in range(3):
        seen.append(client.get("/quote/C-3").get_data(as_text=True))
    seen.append(client.get("/health").get_data(as_text=True))
    seen.append(client.get("/admin/deployment").get_data(as_text=True))
    stop(app)
    assert inventory.calls >= 4
    output = logs.getvalue()
    assert "example.quote" in output  # the logs were captured
    assert all(SECRET not in text for text in seen)
    assert SECRET not in output


def test_startup_validation_refuses_to_start_with_every_problem(
    start: Start, environ: dict[str, str]
) -> None:
    del environ["APP_VERSION"]
    del environ["INVENTORY_API_KEY"]  # and the fresh database has no key either
    with pytest.raises(StartupError) as caught:
        start()
    problems = "\n".join(caught.value.report.errors)
    assert "APP_VERSION" in problems
    assert "inventory_api_key" in problems
    assert len(caught.value.report.errors) == 2


def test_graceful_shutdown_takes_the_service_out_of_rotation(start: Start) -> None:
    app = start()
    services = services_of(app)
    assert app.test_client().get("/health/ready").status_code == 200
    report = services.close("SIGTERM")
    assert report.completed
    assert [hook.name for hook in report.hooks] == ["health", "flags", "database"]
    assert services.health.ready is False
