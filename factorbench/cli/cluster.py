"""`factorbench cluster start|stop|status`: a Dask scheduler and workers on 127.0.0.1."""

from __future__ import annotations

from factorbench.cli.console import say
from factorbench.cli.parser import Parser, UsageError, count, memory_limit, number


def add_parser(sub) -> None:
    cluster = sub.add_parser("cluster", help="start, stop or inspect a Dask scheduler and workers on 127.0.0.1")
    actions = cluster.add_subparsers(dest="action", required=True, parser_class=Parser)
    start = actions.add_parser("start", help="launch `dask scheduler` and N `dask worker` processes, detached")
    start.add_argument("--workers", type=count, default=2, metavar="N", help="worker processes (default 2)")
    start.add_argument("--nthreads", type=count, default=1, metavar="T", help="threads per worker (default 1)")
    start.add_argument("--memory-limit", type=memory_limit, default="auto", metavar="M",
                       help="per worker: auto (default), a size such as 4GiB, or a fraction of memory")
    start.add_argument("--port", type=count, default=8786, metavar="P", help="scheduler port (default 8786)")
    start.add_argument("--timeout", type=number, default=60.0, metavar="S",
                       help="seconds to wait for every worker to connect (default 60)")
    for action in (start, actions.add_parser("stop", help="stop the processes `cluster start` launched"),
                   actions.add_parser("status", help="show the cluster `cluster start` launched")):
        action.add_argument("--state", metavar="PATH",
                            help="state file with the address and PIDs (default ~/.cache/factorbench/cluster.json)")
    cluster.set_defaults(handler=command)


def command(args) -> int:
    from factorbench.registry import missing_modules

    if reason := missing_modules(["distributed"]):
        raise UsageError(f"cluster {args.action}: {reason} (pip install 'factorbench[dask]')")
    from factorbench.parallel import cluster

    info: dict | None
    try:
        if args.action == "start":
            info = cluster.start(workers=args.workers, nthreads=args.nthreads, memory_limit=args.memory_limit,
                                 port=args.port, state=args.state, timeout=args.timeout)
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
