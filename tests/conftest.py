"""Settings shared by the whole test suite.

Hypothesis' per-example deadline (200 ms by default) measures wall-clock time, which on a busy
2-core CI machine says more about the other processes than about the code: a deadline miss is
then a flaky failure, not a finding. Correctness is what these tests check; speed lives in
bench/. Examples stay bounded by each test's own ``max_examples``.
"""

from hypothesis import settings

settings.register_profile("evcf", deadline=None)
settings.load_profile("evcf")
