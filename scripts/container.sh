#!/usr/bin/env bash
# Build and run the factorbench container image with podman or docker.
#
#   scripts/container.sh build [ENGINE-BUILD-ARGS...]    build the image (tag: $IMAGE)
#   scripts/container.sh run [ENGINE-RUN-ARGS...] [-- FACTORBENCH-ARGS...]
#                                                        run it; the report lands in $OUT_DIR
#   scripts/container.sh test [PYTEST-ARGS...]          the container tests (tests/test_container.py)
#   scripts/container.sh env                            print the settings this host needs, as exports
#
# On a machine where `docker build .` / `podman build .` work, this only calls them. On a
# host like the CI machines it also does what they need, and only that, when it is needed:
#   - no base image can be pulled: a Debian bookworm base (Python 3.11) is built once with
#     mmdebstrap and kept as $LOCAL_BASE (rebuilt only when absent);
#   - crun cannot run on hybrid/v1 cgroups, and root in this sandbox cannot raise resource
#     limits above the hard limits: a containers.conf choosing runc and ulimits at the hard
#     limits is written and passed through CONTAINERS_CONF (nothing in /etc changes);
#   - pip inside the build must trust the host's CA bundle: it is mounted into the build.
#
# Settings (environment): ENGINE (podman|docker, default: podman if installed), IMAGE
# (default localhost/factorbench:latest), BASE (base image; default python:3.11-slim where
# it is present or can be pulled, else $LOCAL_BASE), THREADS (build arg, default 1),
# OUT_DIR (run: default ./out), SHM_SIZE (run: /dev/shm size, default 2g).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${IMAGE:-localhost/factorbench:latest}
REGISTRY_BASE=python:3.11-slim
LOCAL_BASE=localhost/debian-python:bookworm
PULL_TIMEOUT_S=${PULL_TIMEOUT_S:-60}

die() { echo "container.sh: $*" >&2; exit 2; }
note() { echo "container.sh: $*" >&2; }

engine() {
    if [ -n "${ENGINE:-}" ]; then
        command -v "$ENGINE" >/dev/null || die "ENGINE=$ENGINE is not installed"
        echo "$ENGINE"
    elif command -v podman >/dev/null; then echo podman
    elif command -v docker >/dev/null; then echo docker
    else die "neither podman nor docker is installed (Debian: apt-get install podman runc)"
    fi
}

# A containers.conf for podman when this host needs one; prints nothing when it does not.
podman_conf() {
    [ -n "${CONTAINERS_CONF:-}" ] && return 0      # the user's own choice wins
    local lines=() cgroup_fs nofile nproc
    cgroup_fs=$(stat -fc %T /sys/fs/cgroup 2>/dev/null || echo unknown)
    # crun refuses hybrid and v1 cgroup layouts ("cgroups in hybrid mode not supported").
    if [ "$cgroup_fs" != cgroup2fs ] && command -v runc >/dev/null; then
        lines+=("[engine]" 'runtime = "runc"')
    fi
    # Podman gives containers nofile/nproc limits of 1048576, above what root may set here.
    nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
    if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
    if [ "$nofile" != unlimited ] && [ "$nofile" -lt 1048576 ]; then
        lines=("[containers]" "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]" "${lines[@]}")
    fi
    [ ${#lines[@]} -eq 0 ] && return 0
    local conf="${XDG_RUNTIME_DIR:-/tmp}/factorbench-containers.conf"
    printf '%s\n' "${lines[@]}" > "$conf"
    echo "$conf"
}

setup_engine() {
    ENGINE=$(engine)
    if [ "$ENGINE" = podman ]; then
        local conf
        conf=$(podman_conf)
        if [ -n "$conf" ]; then
            export CONTAINERS_CONF=$conf
            note "using $conf (runc and ulimits this host allows)"
        fi
    fi
}

has_image() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }

apt_mirror() {
    grep -hoP '^(URIs:\s*|deb\s+(\[[^]]*\]\s+)?)\Khttps?://\S+/debian(?=\s|$)' \
        /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -1 || true
}

build_local_base() {
    command -v mmdebstrap >/dev/null || die "no base image: $REGISTRY_BASE cannot be pulled and mmdebstrap " \
        "is not installed to build $LOCAL_BASE (apt-get install mmdebstrap), or set BASE"
    local mirror started
    mirror=$(apt_mirror)
    mirror=${mirror:-http://deb.debian.org/debian}
    BASE_TAR=$(mktemp --suffix=.tar)
    trap 'rm -f "$BASE_TAR"' EXIT
    started=$(date +%s)
    note "building $LOCAL_BASE with mmdebstrap from $mirror"
    mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$BASE_TAR" "$mirror"
    "$ENGINE" import --quiet --change 'CMD ["/bin/bash"]' "$BASE_TAR" "$LOCAL_BASE" >/dev/null
    rm -f "$BASE_TAR"
    note "base image $LOCAL_BASE built in $(( $(date +%s) - started )) s"
}

choose_base() {
    if [ -n "${BASE:-}" ]; then echo "$BASE"; return; fi
    if has_image "$REGISTRY_BASE"; then echo "$REGISTRY_BASE"; return; fi
    if has_image "$LOCAL_BASE"; then echo "$LOCAL_BASE"; return; fi
    if timeout "$PULL_TIMEOUT_S" "$ENGINE" pull -q "docker.io/library/$REGISTRY_BASE" >/dev/null 2>&1; then
        echo "$REGISTRY_BASE"; return
    fi
    build_local_base >&2
    echo "$LOCAL_BASE"
}

cmd_build() {
    setup_engine
    local base ca=() started
    base=$(choose_base)
    # pip in the build trusts what pip on the host trusts (a proxy's CA, for one).
    if [ "$ENGINE" = podman ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        ca=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
    fi
    started=$(date +%s)
    note "building $IMAGE from $base"
    "$ENGINE" build "${ca[@]}" --build-arg "BASE=$base" --build-arg "THREADS=${THREADS:-1}" \
        -t "$IMAGE" "$@" "$ROOT"
    note "image $IMAGE built in $(( $(date +%s) - started )) s; size $("$ENGINE" image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec)"
}

cmd_run() {
    setup_engine
    has_image "$IMAGE" || die "no image $IMAGE; build it first: scripts/container.sh build"
    local engine_args=() out
    while [ $# -gt 0 ] && [ "$1" != -- ]; do engine_args+=("$1"); shift; done
    [ "${1:-}" = -- ] && shift
    out=${OUT_DIR:-$PWD/out}
    mkdir -p "$out"
    # The image runs as an unprivileged user: podman hands it the folder (:U), docker runs
    # as the caller so the files stay the caller's.
    local mount user=()
    if [ "$ENGINE" = podman ]; then
        mount="$out:/out:U"
    else
        mount="$out:/out"
        user=(--user "$(id -u):$(id -g)" -e HOME=/tmp)
    fi
    # The multiprocessing paradigm shares its arrays through /dev/shm, 64 MB by default in a
    # container: less than one default-size input. A --shm-size given here comes later and wins.
    "$ENGINE" run --rm -v "$mount" --shm-size "${SHM_SIZE:-2g}" "${user[@]}" "${engine_args[@]}" "$IMAGE" "$@"
}

cmd_env() {
    setup_engine
    echo "export ENGINE=$ENGINE"
    [ -n "${CONTAINERS_CONF:-}" ] && echo "export CONTAINERS_CONF=$CONTAINERS_CONF"
    return 0
}

case "${1:-}" in
    build) shift; cmd_build "$@" ;;
    run) shift; cmd_run "$@" ;;
    test) shift; cd "$ROOT" && exec python -m pytest tests/test_container.py "$@" ;;
    env) shift; cmd_env ;;
    *) die "usage: scripts/container.sh build|run|test|env [ARGS...]" ;;
esac
