"""Validate the noise figures of `factorbench run` and the comparison of `report A B`.

    python scripts/validate_noise.py --pairs 10          # on a quiet machine; minutes
    python scripts/validate_noise.py --pairs 1 --tiny    # a smoke test of the script itself

Runs PAIRS A/A pairs of the same quick run (a fixed subset: sma and ema, vectorized and
library paradigms, plus scripts/noise_probe_paradigm.py) on the same commit, and PAIRS
pairs where the probe implementation is made 1.3x slower in the second run, A/A and
slowed alternately so the machine's load falls on both. Each pair is compared with the
logic of `factorbench report A B` (results.compare.compare_rows):
- false flags: A/A rows marked + or - (goal: at most 1% of the compared rows);
- caught: slowed pairs whose probe row is marked + (goal: at least 95%);
- the median minimum detectable effect of each kernel over the A/A pairs.
Run it on a quiet machine: on a busy one the figures say more about the neighbours.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from factorbench.results import compare, schema

HERE = Path(__file__).resolve().parent
PROBE = "noise-probe"
SLOWDOWN = 1.3


def quick_run(json_path: Path, slowdown: float, tiny: bool) -> dict:
    env = {**os.environ, "FACTORBENCH_PLUGINS": "noise_probe_paradigm", "FB_NOISE_SLOWDOWN": str(slowdown),
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    subset = ["--kernel", "sma", "--implementation", PROBE, "--implementation", "bottleneck"] if tiny else [
        "--kernel", "sma", "--kernel", "ema", "--paradigm", "vectorized", "--paradigm", "library",
        "--paradigm", PROBE]
    extra = ["--size", "20000", "--time-budget", "0.3"] if tiny else []
    subprocess.run([sys.executable, "-m", "factorbench", "run", "--quick", *subset, *extra, "--json", str(json_path)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return schema.load(json_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=10, help="A/A pairs and slowed pairs each (default 10)")
    parser.add_argument("--tiny", action="store_true", help="one small case: checks the script, not the noise")
    args = parser.parse_args()
    compared = flagged = caught = 0
    mde: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="validate-noise-") as folder:
        for pair in range(args.pairs):
            for slowed in (False, True):
                before = quick_run(Path(folder) / f"{pair}-{slowed}-a.json", 1.0, args.tiny)
                after = quick_run(Path(folder) / f"{pair}-{slowed}-b.json", SLOWDOWN if slowed else 1.0, args.tiny)
                rows = [row for row in compare.compare_rows(before, after) if row["ratio"] is not None]
                if slowed:
                    probe = [row for row in rows if row["label"] == PROBE]
                    caught += bool(probe and probe[0]["mark"] == "+")
                    continue
                compared += len(rows)
                flagged += sum(row["mark"] in ("+", "-") for row in rows)
                for row in rows:
                    if row["mde"] is not None:
                        mde.setdefault(row["case"].split()[0], []).append(row["mde"])
                print(f"pair {pair + 1}/{args.pairs}: {len(rows)} rows compared", file=sys.stderr)
    print(f"A/A: {flagged} of {compared} compared rows falsely flagged "
          f"({flagged / max(compared, 1):.1%}; goal <= 1%)")
    print(f"{SLOWDOWN}x slowdown of {PROBE}: caught in {caught} of {args.pairs} pairs "
          f"({caught / max(args.pairs, 1):.0%}; goal >= 95%)")
    for kernel, values in sorted(mde.items()):
        print(f"median minimum detectable effect, {kernel}: {statistics.median(values):.1%} over {len(values)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
