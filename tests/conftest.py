"""Hypothesis profiles: a bounded default for CI and the default run, and a thorough one;
and SIGINT restored for the Ctrl-C tests' children.

    pytest tests/test_properties.py                                # ci: fixed examples
    pytest tests/test_properties.py --hypothesis-profile=thorough  # many more

deadline=None: the first call of a JIT implementation compiles (seconds), which is not
slowness of the example. The ci profile is derandomized, so a run reproduces exactly.
"""

import os
import signal

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=400, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The Ctrl-C tests send SIGINT to children they start. A suite started in the background
# (`cmd &`, nohup) ignores SIGINT, and children inherit that: they would never stop.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
