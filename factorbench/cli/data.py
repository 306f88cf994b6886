"""`factorbench data`: generate input data sets."""

from __future__ import annotations

from rich.markup import escape

from factorbench.cli.console import console
from factorbench.cli.parser import Parser, UsageError, count


def add_parser(sub) -> None:
    data = sub.add_parser("data", help="generate input data sets")
    data_sub = data.add_subparsers(dest="dataset", required=True, parser_class=Parser)
    ticks = data_sub.add_parser("ticks", help="synthetic tick data as Parquet files DIR/ticks/*.parquet")
    ticks.add_argument("--rows", type=count, default=10_000_000, help="ticks (default 10M)")
    ticks.add_argument("--symbols", type=count, default=500, help="symbols (default 500)")
    ticks.add_argument("--files", type=count, default=8, help="Parquet files, each a time range (default 8)")
    ticks.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    ticks.add_argument("--out", required=True, metavar="DIR", help="output directory")
    ticks.add_argument("--force", action="store_true", help="replace Parquet files already in DIR/ticks")
    data.set_defaults(handler=command)


def ticks(args) -> int:
    from factorbench.registry import missing_modules
    from factorbench.workloads.ticks import data

    if reason := missing_modules(["pyarrow"]):
        raise UsageError(f"data ticks needs pyarrow ({reason}): pip install 'factorbench[ticks]'")
    try:
        data.validate(args.rows, args.symbols, args.files)
    except ValueError as exc:
        raise UsageError(f"data ticks: {exc}") from None
    try:
        paths = data.generate(args.out, rows=args.rows, symbols=args.symbols, files=args.files, seed=args.seed,
                              force=args.force)
    except (FileExistsError, OSError) as exc:
        raise UsageError(f"data ticks: {exc}") from None
    console.print(f"wrote {args.rows:,} ticks over up to {args.symbols:,} symbols in {len(paths)} files: "
                  f"{escape(str(paths[0].parent))}/*.parquet")
    return 0




def command(args) -> int:
    return {"ticks": ticks}[args.dataset](args)
