"""`factorbench gate`: benchmark two commits and fail when the later one regressed."""

from __future__ import annotations

from factorbench.cli.console import console
from factorbench.cli.parser import UsageError, add_plugin_option, number
from factorbench.regress.gate import DEFAULT_FACTOR, DEFAULT_THRESHOLD_PCT, MODES


def add_parser(sub) -> None:
    gate = sub.add_parser("gate", help="benchmark two commits and exit 1 if HEAD regressed (CI)")
    gate.add_argument("base", metavar="BASE", help="commit to compare against, e.g. main or HEAD~1")
    gate.add_argument("head", metavar="HEAD", help="commit under test, e.g. HEAD")
    gate.add_argument("--mode", choices=MODES, default="wall",
                      help="wall: asv continuous, timed (default); callgrind: instruction counts at small sizes")
    gate.add_argument("--bench", metavar="REGEX", help="only benchmarks whose asv name matches, "
                                                       "e.g. 'sma__' or 'kernels.ema__vectorized'")
    gate.add_argument("--factor", type=number, default=DEFAULT_FACTOR, metavar="F",
                      help=f"wall mode: slower by more than this ratio, and significant, fails (default {DEFAULT_FACTOR})")
    gate.add_argument("--threshold", type=number, default=DEFAULT_THRESHOLD_PCT, metavar="PCT",
                      help=f"callgrind mode: more instructions by more than PCT%% fails (default {DEFAULT_THRESHOLD_PCT:g})")
    gate.add_argument("--json", metavar="PATH", help="also write every compared benchmark and the verdict here")
    add_plugin_option(gate)
    gate.set_defaults(handler=command)


def command(args) -> int:
    from factorbench.regress.gate import GateError, gate

    try:
        return gate(args.base, args.head, mode=args.mode, bench=args.bench, factor=args.factor,
                    threshold_pct=args.threshold, json_path=args.json, console=console)
    except GateError as exc:
        raise UsageError(str(exc)) from None
