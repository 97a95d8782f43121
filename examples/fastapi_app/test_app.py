"""Drives the FastAPI example through Starlette's TestClient, on a SQLite file.

Time is a ``FakeClock``: retries, the breaker's recovery and the rate limiter's
window move only when a test says so, so nothing sleeps.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest

from buttress.lifecycle import StartupError
from buttress.log import configure_logging
from buttress.testing import FakeClock

from .app import Inventory, create_app, shutdown_report

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 behind its TestClient; httpx still works.
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

SECRET = "sk-live-7f3a9c1e5b2d"


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


def start(environ: dict[str, str], clock: FakeClock, inventory: Inventory) -> TestClient:
    # No redirect followed: a probe or load balancer follows none either.
    return TestClient(create_app(environ, clock=clock, inventory=inventory), follow_redirects=False)


def test_health_endpoints_answer_health_json(
    environ: dict[str, str], clock: FakeClock, inventory: Inventory
) -> None:
    with start(environ, clock, inventory) as client:
        full = client.get("/health")
        assert full.status_code == 200
        assert full.headers["content-type"].startswith("application/health+json")
        body = full.json()
        assert body["status"] == "pass"
        assert body["version"] == "1.2.3"
        assert {key.split(":")[0] for key in body["checks"]} >= {"database", "inventory"}
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").status_code == 200


def test_rate_limit_answers_429_with_envelope_and_retry_after(
    environ: dict[str, str], clock: FakeClock, inventory: Inventory
) -> None:
    environ["RATE_LIMIT"] = "5"
    with start(environ, clock, inventory) as client:
        for _ in range(5):
            admitted = client.get("/quote/A-1")
            assert admitted.status_code == 200
        refused = client.get("/quote/A-1")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["success"] is False
        assert refused.json()["error"]["code"] == "RATE_LIMITED"
        assert inventory.calls == 5  # the refusal never reached the handler
        assert client.get("/health").status_code == 200  # health is exempt
        clock.advance(60)
        assert client.get("/quote/A-1").status_code == 200


def test_instances_on_one_database_share_the_rate_limit(
    environ: dict[str, str], clock: FakeClock, inventory: Inventory
) -> None:
    environ["RATE_LIMIT"] = "4"
    with start(environ, clock, inventory) as first, start(environ, clock, inventory) as second:
        statuses = [client.get("/quote/A-1").status_code for client in (first, second) * 3]
        assert statuses == [200, 200, 200, 200, 429, 429]  # one budget, not 4 each
        assert inventory.calls == 4
        clock.advance(60)
        assert second.get("/quote/A-1").status_code == 200


def test_breaker_opens_after_failures_and_recovers(
    environ: dict[str, str], clock: FakeClock, inventory: Inventory
) -> None:
    with start(environ, clock, inventory) as client:
        assert client.get("/quote/A-1").status_code == 200
        inventory.down = True
        inventory.calls = 0

        first = client.get("/quote/A-1")  # two attempts (one retry), both fail
        assert first.status_code == 502
        assert first.json()["error"]["code"] == "UPSTREAM_FAILED"
        second = client.get("/quote/A-1")  # third failure opens the circuit mid-retry
        assert second.status_code == 503
        assert inventory.calls == 3
        assert second.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert int(second.headers["retry-after"]) == 30

        third = client.get("/quote/A-1")  # refused at once: the dependency is spared
        assert third.status_code == 503
        assert inventory.calls == 3
        health = client.get("/health").json()
        assert health["status"] == "warn"  # a non-critical dependency is degraded

        inventory.down = False
        clock.advance(30)  # recovery timeout: the next call is a probe
        assert client.get("/quote/A-1").status_code == 200
        assert client.get("/health").json()["status"] == "pass"


def test_flag_toggled_through_the_api_changes_prices(
    environ: dict[str, str], clock: FakeClock, inventory: Inventory
) -> None:
    with start(environ, clock, inventory) as client:
        before = client.get("/quote/B-7").json()["data"]
        assert before["discounted"] is False
        switched = client.put("/admin/flags/bulk-discount", params={"enabled": "true"})
        assert switched.status_code == 200
        after = client.get("/quote/B-7").json()["data"]
        assert after["discounted"] is True
        assert after["price"] == before["price"] * 9 // 10
        assert client.put("/admin/flags/nope", params={"enabled": "true"}).status_code == 404

    with start(environ, clock, inventory) as client:  # the flag survives a restart
        assert client.get("/quote/B-7").json()["data"]["discounted"] is True


def test_maintenance_mode_set_in_config_answers_503(
    environ: dict[str, str], clock: FakeClock, inventory: Inventory
) -> None:
    app = create_app(environ, clock=clock, inventory=inventory)
    with TestClient(app) as client:
        config = app.state.services.config  # what `buttress config maintenance on` changes
        portal = client.portal  # the TestClient's event loop, where the app's backend lives
        assert portal is not None
        portal.call(config.set_maintenance_mode, True)
        down = client.get("/quote/A-1")
        assert down.status_code == 503
        assert down.headers["retry-after"] == "60"
        portal.call(config.set_maintenance_mode, False)
        assert client.get("/quote/A-1").status_code == 200


def test_deployment_is_recorded_once_per_version(
    environ: dict[str, str], clock: FakeClock, inventory: Inventory
) -> None:
    with start(environ, clock, inventory) as client:
        first = client.get("/admin/deployment").json()["data"]
        assert first["version"] == "1.2.3"
        assert first["environment"] == "staging"
    with start(environ, clock, inventory) as client:  # a restart is not a deployment
        assert client.get("/admin/deployment").json()["data"]["id"] == first["id"]
    environ["APP_VERSION"] = "1.3.0"
    with start(environ, clock, inventory) as client:
        upgraded = client.get("/admin/deployment").json()["data"]
        assert upgraded["version"] == "1.3.0"
        assert upgraded["id"] != first["id"]
        assert client.get("/health").json()["version"] == "1.3.0"


def test_secret_never_appears_in_responses_or_logs(
    environ: dict[str, str], clock: FakeClock, inventory: Inventory, logs: io.StringIO
) -> None:
    seen: list[str] = []
    with start(environ, clock, inventory) as client:
        listing = client.get("/admin/config")
        assert listing.status_code == 200
        entries = {e["key"]: e for e in listing.json()["data"]}
        assert entries["inventory_api_key"]["value"] == "***"
        assert entries["inventory_api_key"]["sensitive"] is True
        seen.append(listing.text)
        seen.append(client.get("/quote/C-3").text)  # the secret was used for this call
        inventory.down = True
        for _ in range(3):
            seen.append(client.get("/quote/C-3").text)
        seen.append(client.get("/health").text)
        seen.append(client.get("/admin/deployment").text)
    assert inventory.calls >= 4
    output = logs.getvalue()
    assert "example.quote" in output  # the logs were captured
    assert all(SECRET not in text for text in seen)
    assert SECRET not in output


def test_startup_validation_refuses_to_start_with_every_problem(
    environ: dict[str, str], clock: FakeClock, inventory: Inventory
) -> None:
    del environ["APP_VERSION"]
    del environ["INVENTORY_API_KEY"]  # and the fresh database has no key either
    client = start(environ, clock, inventory)
    with pytest.raises(StartupError) as caught, client:
        pass
    problems = "\n".join(caught.value.report.errors)
    assert "APP_VERSION" in problems
    assert "inventory_api_key" in problems
    assert len(caught.value.report.errors) == 2


def test_graceful_shutdown_takes_the_service_out_of_rotation(
    environ: dict[str, str], clock: FakeClock, inventory: Inventory
) -> None:
    app = create_app(environ, clock=clock, inventory=inventory)
    with TestClient(app) as client:
        assert client.get("/health/ready").status_code == 200
    report = shutdown_report(app)
    assert report is not None
    assert report.completed
    assert [hook.name for hook in report.hooks] == ["flags", "database"]
    assert app.state.health.ready is False
