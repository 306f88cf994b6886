"""Hypothesis profiles: a bounded default for CI and the default run, and a thorough one.

    pytest tests/test_properties.py                                # ci: fixed examples
    pytest tests/test_properties.py --hypothesis-profile=thorough  # many more

deadline=None: the first call of a JIT implementation compiles (seconds), which is not
slowness of the example. The ci profile is derandomized, so a run reproduces exactly.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=400, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
