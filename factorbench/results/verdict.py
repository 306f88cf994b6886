"""The gate's status words, spelled once for the gate, bisect and the Markdown and JUnit
writers: what happened to one benchmark between a base and a head commit."""

from __future__ import annotations

REGRESSED = "regressed"
IMPROVED = "improved"
UNCHANGED = "unchanged"
NOISY = "noisy"
"""callgrind: moved beyond the threshold but within a few times its own drift at base."""
UNCONFIRMED = "unconfirmed"
"""wall mode: regressed once, not when run again."""
FAILED = "failed"
"""raised at head (ran at base)."""
WRONG = "wrong"
"""a wrong answer (or a modified input) at head (right at base)."""
ERROR = "error"
"""the harness itself could not measure it (at either commit): nothing can be said of it."""
NOT_GATED = "not gated"
"""wrong or raising at both commits: named, never silently left out, but not failing the
pull request that did not break it."""
FIXED = "fixed"
SKIPPED = "skipped"
NEW = "new"
GONE = "gone"
WALL_TIME_ONLY = "wall-time only"
"""callgrind: counts that cannot reproduce (process pools, clusters, GPUs)."""

FAILING = (REGRESSED, FAILED, WRONG, ERROR)
"""A benchmark in one of these fails the gate."""
BROKEN = (FAILED, WRONG, ERROR)
"""It did not run right at head: bisect cannot call such a commit good or bad."""
QUIET = (UNCHANGED, SKIPPED)
"""Left out of the tables of what moved."""
NOT_RUN = (SKIPPED, WALL_TIME_ONLY, GONE)
"""JUnit's skipped test cases."""
