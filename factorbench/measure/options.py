"""What one run measures and how: the options every client of the runner (the CLI, the asv
suite, tests, workers) builds and reads. Apart from the runner, so a worker reads them
without importing the runner that starts it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RunOptions:
    kernels: list[str] = field(default_factory=list)
    """Kernel names; empty means all."""
    paradigms: list[str] = field(default_factory=list)
    implementations: list[str] = field(default_factory=list)
    """Implementation names (e.g. 'bottleneck'); empty means all."""
    sizes: list[int] = field(default_factory=list)
    """Values of each kernel's size parameter; several give a scaling series."""
    params: dict[str, Any] = field(default_factory=dict)
    """Overrides of kernel parameters (window, alpha, cols, ...); applied where a kernel has them."""
    quick: bool = False
    """Small sizes, and the quick defaults of the three below where they are left at 0."""
    repeat: int = 0
    """Samples per measurement; 0: 7, or 3 for a quick run."""
    min_sample_s: float = 0.0
    """Shortest sample (calls are batched up to it); 0: 0.05 s, or 0.01 s for a quick run."""
    time_budget_s: float = 0.0
    """Per implementation and case: a slower one is measured at a smaller size, labelled;
    0: 10 s, or 2 s for a quick run."""
    workloads: list[str] | None = None
    """Workload names; None runs every workload unless kernels, paradigms or
    implementations were chosen. Workloads chosen without any of those run alone."""
    seed: int = 0
    threads: list[int] = field(default_factory=list)
    """Thread counts: pools are limited to the largest; implementations with a 'threads'
    setting are measured at each."""
    settings: dict[str, list] = field(default_factory=dict)
    """Values for implementation settings (processes, scheduler, ...), overriding their defaults."""
    cpus: list[int] = field(default_factory=list)
    """CPUs the runner and the worker processes it starts are pinned to; empty: unchanged."""
    precision: float | None = 0.02
    """Sampling goes on until the median's 95% CI is within ±precision (0.02 = 2%) or the
    time budget is spent; None takes exactly ``repeat`` samples."""
    timeout_s: float | None = None
    """Hard deadline of one worker call; None derives it from the time budget."""
    rounds: int = 3
    """Rounds of timing per row, over every implementation in turn, each in a fresh worker
    process (as pyperf's processes): the CI and the run-vs-run test are between rounds."""
    in_process: bool = False
    """Measure in the runner's own process (for pdb and profilers), not in workers."""
    memory_limit_bytes: int | None = None
    """At most this much memory for the run (--memory-limit); the cgroup's limit and the
    available memory bound it too (see measure.memory)."""
    artifacts_dir: str | None = None
    """Where files for the report go (task graphs, profiles); default: beside the results
    file, named after it ('results-artifacts/' for 'results.json')."""

    def __post_init__(self):
        # Here rather than in the CLI, so RunOptions(quick=True) from Python is as quick.
        self.repeat = self.repeat or (3 if self.quick else 7)
        self.min_sample_s = self.min_sample_s or (0.01 if self.quick else 0.05)
        self.time_budget_s = self.time_budget_s or (2.0 if self.quick else 10.0)

    def to_json(self) -> dict:
        return asdict(self)
