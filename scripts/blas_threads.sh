#!/usr/bin/env bash
# Why the article sets OPENBLAS_NUM_THREADS=1: gram_colsum (a BLAS matrix product) on NumPy
# in one process and on two worker processes (multiprocessing-shm), with BLAS threads 1
# and 2, on CPU sets 0 and 0-1, on the host and in the container image. Two processes x two
# BLAS threads on two CPUs, or two BLAS threads on one, oversubscribe the CPUs.
#
#   scripts/blas_threads.sh [OUT_DIR]      (needs the image: scripts/container.sh build)
# Prints one table; the raw results are OUT_DIR/<where>-cpus<set>-blas<n>.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/reports/blas-threads}")
mkdir -p "$OUT"
RUN_ARGS=(run --kernel gram_colsum --size 20000 --implementation vectorized --implementation multiprocessing-shm
          --processes 2 --repeat 5 --time-budget 5)

for cpus in 0 0-1; do
    for blas in 1 2; do
        # OpenBLAS here and in each worker. Not OMP_NUM_THREADS: on the host, =1 makes the
        # multiprocessing-shm check fail with a broken pool (seen on these machines, open).
        threads=(OPENBLAS_NUM_THREADS=$blas FACTORBENCH_WORKER_BLAS_THREADS=$blas)
        env "${threads[@]}" taskset -c "$cpus" factorbench "${RUN_ARGS[@]}" \
            --json "$OUT/host-cpus$cpus-blas$blas.json" >/dev/null
        OUT_DIR=$OUT "$ROOT/scripts/container.sh" run --cpuset-cpus "$cpus" \
            $(printf -- '-e %s ' "${threads[@]}") -- "${RUN_ARGS[@]}" \
            --json "/out/container-cpus$cpus-blas$blas.json" >/dev/null
    done
done

python3 - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

print("| where | CPU set | BLAS threads | vectorized (NumPy, 1 process) | multiprocessing-shm, 2 processes | threads on the CPUs (mp) |")
print("|---|---|---|---|---|---|")
for where in ("host", "container"):
    for cpus in ("0", "0-1"):
        for blas in (1, 2):
            doc = json.loads((Path(sys.argv[1]) / f"{where}-cpus{cpus}-blas{blas}.json").read_text())
            cells = {}
            for row in doc["results"]:
                if row["status"] != "ok":
                    cells[row["implementation"]] = row["status"]
                    continue
                cell = f"{row['median'] * 1e3:.0f} ms (IQR {row['iqr'] * 1e3:.0f})"
                if row["params"]["rows"] != 20_000:  # cut down to fit the time budget
                    cell += f" at {row['params']['rows']:,} rows"
                cells[row["implementation"]] = cell
            ncpus = len(doc["machine"]["cpu_affinity"])
            print(f"| {where} | {cpus} | {blas} | {cells.get('vectorized', '-')} | "
                  f"{cells.get('multiprocessing-shm', '-')} | {2 * blas} on {ncpus} |")
EOF
