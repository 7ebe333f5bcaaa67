"""Shared pytest configuration: hypothesis profiles chosen by ``HYPOTHESIS_PROFILE``.

Profiles
--------
dev       fast local iteration (50 examples).
ci        the default under ``make test``: derandomized, no deadline, no example
          database, 200 examples per property (the invariance suite's floor).
mutation  ``make mutation``: 30 examples, derandomized (each mutant reruns the suite).
thorough  ``make thorough``: 2000 examples, derandomized.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_common = {
    "deadline": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("dev", max_examples=50, **_common)
settings.register_profile("ci", max_examples=200, derandomize=True, database=None, **_common)
settings.register_profile("mutation", max_examples=30, derandomize=True, database=None, **_common)
settings.register_profile("thorough", max_examples=2000, derandomize=True, database=None, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
