"""`factorbench env flink`: create PyFlink's own virtual environment (it clashes with ours)."""

from __future__ import annotations

import time

from factorbench.cli.console import say
from factorbench.cli.parser import Parser, UsageError


def add_parser(sub) -> None:
    env = sub.add_parser("env", help="create a separate environment an engine needs (flink: PyFlink 2.3.0)")
    kinds = env.add_subparsers(dest="kind", required=True, parser_class=Parser)
    flink = kinds.add_parser("flink", help="a virtual environment with apache-flink 2.3.0 (uv if installed, else "
                                           "pip), at ~/.cache/factorbench/flink-2.3.0 or $FACTORBENCH_FLINK_ENV")
    flink.add_argument("--force", action="store_true", help="recreate it even if it is complete")
    env.set_defaults(handler=command)


def command(args) -> int:
    from factorbench.parallel import flink
    from factorbench.parallel.cluster import ClusterError

    path = flink.env_path()
    say(f"PyFlink environment: {path}")
    began = time.perf_counter()
    try:
        info = flink.create_env(path, force=args.force)
    except ClusterError as exc:
        raise UsageError(f"env flink: {exc}") from None
    if info.get("existing"):
        say(f"already complete (apache-flink {info['apache-flink']}, made {info['created']}); --force recreates it")
    else:
        say(f"made with {info['installer']} in {time.perf_counter() - began:.1f} s")
    say(f"python: {info['python']}")
    say(f"Flink distribution: {info['flink_home']}")
    _, major, line = flink.java()
    say(f"java: {line}" if major and major >= flink.JAVA_MIN else
        f"warning: Flink needs Java {flink.JAVA_MIN}+ (tested with 17): {line}")
    return 0
