#!/usr/bin/env bash
# The GPU checks of the cuda and cupy paradigms and the random_forest workload, in one go,
# on a machine with an NVIDIA GPU. Written for offline GPU machines whose python3 already
# has numpy, scipy, pandas, rich, numba-cuda, CuPy and scikit-learn: nothing can be
# downloaded there, so factorbench is installed without dependencies (numexpr and
# bottleneck are then missing: those CPU paradigms show as unavailable, which these checks
# do not need). Wheels placed in .whl/ are installed first, e.g. cuML if it can be carried.
#
#   bash scripts/gpu_check.sh                        # about 5 minutes on an H200
#   RF_ROWS=1000000 RF_TREES=100 bash scripts/gpu_check.sh   # 1e6 x 50, 100 trees (long on CPU)
#
# Output under $OUT (default ./gpu-check): run.log (everything), nvidia-smi.txt,
# pytest.log, kernels.json and trig.json (factorbench results), forest.json, summary.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
PY=${PYTHON:-python3}
N=${N:-100000000}                  # sma and ema length; trig uses a sqrt(N) x sqrt(N) matrix
RF_ROWS=${RF_ROWS:-100000} RF_COLS=${RF_COLS:-50} RF_TREES=${RF_TREES:-100}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
exec > >(tee "$OUT/run.log") 2>&1
status=0

echo "== device"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv
$PY --version

echo "== install factorbench (no downloads)"
if compgen -G ".whl/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps .whl/*.whl || exit 1
fi
$PY -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
$PY -m factorbench.cli list

echo "== tests on the device (the simulator checks are CPU-only and skipped here)"
$PY -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_correctness.py -k "not simulator" \
    2>&1 | tee "$OUT/pytest.log" || status=1

echo "== kernels at n = $N: with host-device transfers (median) vs device-resident (CUDA events)"
$PY -m factorbench.cli run --paradigm cuda --paradigm cupy --paradigm vectorized --kernel sma --kernel ema \
    --size "$N" --repeat 5 --time-budget 60 --json "$OUT/kernels.json" || status=1
side=$($PY -c "import math; print(math.isqrt($N))")
$PY -m factorbench.cli run --paradigm cuda --paradigm cupy --paradigm vectorized --kernel trig \
    --size "$side" --repeat 5 --time-budget 60 --json "$OUT/trig.json" || status=1

echo "== random forest: cuML vs scikit-learn, rows=$RF_ROWS cols=$RF_COLS trees=$RF_TREES"
$PY -m factorbench.cli run --workload random_forest --param rows="$RF_ROWS" --param cols="$RF_COLS" \
    --param trees="$RF_TREES" --json "$OUT/forest.json" || status=1

echo "== summary"
$PY - "$OUT" <<'PY' | tee "$OUT/summary.md"
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
print("| kernel | implementation | size | with transfers | resident | resident GB/s | % of peak | GPU |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for name in ("kernels.json", "trig.json"):
    path = out / name
    if not path.exists():
        continue
    for row in json.loads(path.read_text())["results"]:
        extra = row.get("extra") or {}
        if row["paradigm"] not in ("cuda", "cupy"):
            continue
        if row["status"] != "ok" or "resident_median_s" not in extra:
            print(f"| {row['kernel']} | {row['implementation']} | | {row['status']}: {row['reason']} | | | | |")
            continue
        pct = extra.get("resident_pct_of_peak")
        print(f"| {row['kernel']} | {row['implementation']} | {row['elements']:,} | {row['median'] * 1e3:.2f} ms "
              f"| {extra['resident_median_s'] * 1e3:.3f} ms | {extra['resident_bandwidth_Bps'] / 1e9:,.0f} "
              f"| {'-' if pct is None else f'{pct:.0f}%'} | {extra['gpu']['name']} |")
forest = out / "forest.json"
if forest.exists():
    for section in json.loads(forest.read_text()).get("workloads", []):
        print(f"\nrandom_forest {section['params']} ({section['status']} {section['reason']})")
        for row in section["rows"]:
            print("-", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
        for note in section["notes"]:
            print("  ", note)
PY
exit $status
