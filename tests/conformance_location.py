"""Where the shared OpenFeature conformance suites are read from, and whether they are there.

The suites are the project's shared material (``../shared`` beside the
repository, as CI lays it out), read in place and never copied here. In a plain
clone without it the Gherkin tests skip (fail under CI=true); the root conftest
says so in the run's header and summary, naming this path.
"""

from __future__ import annotations

import os
from pathlib import Path

ENVIRONMENT = "BUTTRESS_CONFORMANCE_DIR"

FEATURES = Path(
    os.environ.get(ENVIRONMENT)
    or Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "openfeature"
).resolve()


def missing_notice() -> str | None:
    """One loud line when the suites are absent, else None."""
    if (FEATURES / "spec-main" / "evaluation_v2.feature").is_file():
        return None
    return (
        f"OpenFeature conformance suites NOT FOUND at {FEATURES}: the Gherkin scenarios "
        f"(tests/adapter_openfeature/of_conformance) are SKIPPED; put ../shared beside the "
        f"repository or set {ENVIRONMENT}"
    )
