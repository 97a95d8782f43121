"""Helpers for testing code that uses buttress, without sleeping and without servers.

``FakeClock`` moves time by hand; ``flags_override`` forces flags on or off for
a block. Hypothesis strategies live in ``buttress.testing.strategies`` and the
pytest fixtures in ``buttress.testing.pytest_plugin``, imported only on demand.
"""

from buttress.testing._clock import FakeClock
from buttress.testing._flags import flags_override

__all__ = ["FakeClock", "flags_override"]
