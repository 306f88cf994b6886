"""`factorbench cluster start|stop|status [--engine dask|flink]`: a Dask scheduler and
workers, or a Flink JobManager and TaskManager, on 127.0.0.1."""

from __future__ import annotations

from factorbench.cli.console import say
from factorbench.cli.parser import Parser, UsageError, count, memory_limit, number


def add_parser(sub) -> None:
    cluster = sub.add_parser("cluster", help="start, stop or inspect a Dask or Flink cluster on 127.0.0.1")
    actions = cluster.add_subparsers(dest="action", required=True, parser_class=Parser)
    start = actions.add_parser("start", help="launch `dask scheduler` and N `dask worker` processes, detached")
    start.add_argument("--workers", type=count, default=2, metavar="N", help="worker processes (default 2)")
    start.add_argument("--nthreads", type=count, default=1, metavar="T", help="threads per worker (default 1)")
    start.add_argument("--memory-limit", type=memory_limit, default="auto", metavar="M",
                       help="per worker: auto (default), a size such as 4GiB, or a fraction of memory")
    start.add_argument("--port", type=count, metavar="P",
                       help="scheduler port (default 8786); flink: the REST port (default 8081)")
    start.add_argument("--timeout", type=number, metavar="S",
                       help="seconds to wait for every worker to connect (default 60; flink 90)")
    for action in (start, actions.add_parser("stop", help="stop the processes `cluster start` launched"),
                   actions.add_parser("status", help="show the cluster `cluster start` launched")):
        action.add_argument("--engine", choices=("dask", "flink"), default="dask",
                            help="dask (default): scheduler + workers; flink: one JobManager and one TaskManager "
                                 "(2 slots) from PyFlink's distribution (needs `factorbench env flink` and Java)")
        action.add_argument("--state", metavar="PATH",
                            help="state file with the address and PIDs (default ~/.cache/factorbench/cluster.json; "
                                 "flink: flink-cluster.json)")
    cluster.set_defaults(handler=command)


def command(args) -> int:
    if args.engine == "flink":
        return flink_command(args)
    from factorbench.registry import missing_modules

    if reason := missing_modules(["distributed"]):
        raise UsageError(f"cluster {args.action}: {reason} (pip install 'factorbench[dask]')")
    from factorbench.parallel import cluster

    info: dict | None
    try:
        if args.action == "start":
            info = cluster.start(workers=args.workers, nthreads=args.nthreads, memory_limit=args.memory_limit,
                                 port=args.port or cluster.DEFAULT_PORT, state=args.state,
                                 timeout=args.timeout or cluster.START_TIMEOUT_S)
        elif args.action == "stop":
            info = cluster.stop(state=args.state)
        else:
            info = cluster.status(state=args.state)
    except cluster.ClusterError as exc:
        raise UsageError(f"cluster {args.action}: {exc}") from None
    if info is None:
        say(f"no factorbench cluster is running (no state file {args.state or cluster.default_state_path()})")
        return 1
    if args.action == "start":
        pids = " ".join(f"{entry['role']}={entry['pid']}" for entry in info["processes"])
        state = f" --state {args.state}" if args.state else ""
        say(f"Dask cluster up at {info['address']} ({info['workers']} workers x {info['nthreads']} threads, "
            f"memory limit {info['memory_limit']})")
        say(f"dashboard: {info['dashboard']}")
        say(f"pids: {pids}")
        say(f"use it: factorbench run --paradigm dask --scheduler {info['address']}")
        say(f"stop it: factorbench cluster stop{state}")
    elif args.action == "stop":
        say(f"stopped the Dask cluster at {info['address']}: terminated {info['terminated'] or '-'}, "
            f"killed {info['killed'] or '-'}, already gone {info['gone'] or '-'}")
    else:
        connected = (f"{info['connected_workers']} workers ({info['connected_threads']} threads) connected"
                     if "connected_workers" in info else f"scheduler not reachable: {info['connect_error']}")
        say(f"Dask cluster at {info['address']}, started {info['started']}: {connected}")
        say(f"dashboard: {info['dashboard']}")
        for entry in info["processes"]:
            say(f"  {entry['role']}: pid {entry['pid']} {'running' if entry['alive'] else 'gone'}")
        return 0 if "connected_workers" in info else 1
    return 0


def flink_command(args) -> int:
    from factorbench.parallel import flink
    from factorbench.parallel.cluster import ClusterError

    state = f" --state {args.state}" if args.state else ""
    info: dict | None
    try:
        if args.action == "start":
            info = flink.start(port=args.port or flink.DEFAULT_REST_PORT, state=args.state,
                               timeout=args.timeout or flink.START_TIMEOUT_S)
        elif args.action == "stop":
            info = flink.stop(state=args.state)
        else:
            info = flink.status(state=args.state)
    except ClusterError as exc:
        raise UsageError(f"cluster {args.action}: {exc}") from None
    if info is None:
        say(f"no factorbench Flink cluster is running (no state file {args.state or flink.default_state_path()})")
        return 1
    if args.action == "start":
        pids = " ".join(f"{entry['role']}={entry['pid']}" for entry in info["processes"])
        say(f"Flink cluster up at {info['address']} (1 JobManager, 1 TaskManager with {info['slots']} slots)")
        say(f"web UI and REST: {info['dashboard']}; logs: {info['logs']}")
        say(f"pids: {pids}")
        at = f" --param risk_cluster_state={args.state}" if args.state else ""
        say(f"use it: factorbench run --workload risk --param risk_flink=standalone{at}")
        say(f"stop it: factorbench cluster stop --engine flink{state}")
    elif args.action == "stop":
        say(f"stopped the Flink cluster at {info['address']}: terminated {info['terminated'] or '-'}, "
            f"killed {info['killed'] or '-'}, already gone {info['gone'] or '-'}")
    else:
        overview = info.get("overview")
        say(f"Flink cluster at {info['address']}, started {info['started']}: " +
            (f"{overview['taskmanagers']} TaskManager(s), {overview['slots-available']}/{overview['slots-total']} "
             f"slots free, {overview['jobs-running']} job(s) running" if overview else
             f"JobManager not reachable: {info['connect_error']}"))
        for entry in info["processes"]:
            say(f"  {entry['role']}: pid {entry['pid']} {'running' if entry['alive'] else 'gone'}")
        return 0 if overview else 1
    return 0
