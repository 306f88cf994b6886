"""`factorbench profile`: CPU and memory profiles of one implementation."""

from __future__ import annotations

from rich.markup import escape

from factorbench.cli.console import console, errors
from factorbench.cli.parser import UsageError, add_plugin_option, count, key_value, number


def add_parser(sub) -> None:
    profile = sub.add_parser("profile", help="CPU and memory profiles of one implementation")
    profile.add_argument("kernel")
    profile.add_argument("implementation", help="implementation or paradigm name, e.g. bottleneck")
    profile.add_argument("--size", type=count, help="the kernel's size parameter (default: its --quick size)")
    profile.add_argument("-o", "--output", default="reports/profiles", metavar="DIR",
                         help="output folder (default reports/profiles)")
    profile.add_argument("--setting", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                         help="an implementation setting, e.g. processes=2 (default: the implementation's own)")
    profile.add_argument("--seconds", type=number, default=2.0, help="seconds under py-spy (default 2)")
    profile.add_argument("--seed", type=int, default=0, help="input generator seed")
    add_plugin_option(profile)
    profile.set_defaults(handler=command)


def command(args) -> int:
    from factorbench.profiling import MEMORY_PEAK_KEY, profile, resolve

    try:
        impl, params = resolve(args.kernel, args.implementation, args.size)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.seconds <= 0:
        raise UsageError(f"--seconds must be > 0, got {args.seconds:g}")
    settings = dict(args.setting)
    unknown = sorted(set(settings) - set(impl.settings))
    if unknown:
        raise UsageError(f"{impl.kernel}/{impl.name} has no setting {', '.join(unknown)}; "
                         f"it has: {', '.join(impl.settings) or 'none'}")
    outcome = profile(impl.kernel, impl.name, params, args.output, settings=settings, seconds=args.seconds,
                      seed=args.seed)
    console.print(f"{impl.kernel}/{impl.name} at " + ", ".join(f"{k}={v}" for k, v in {**params, **settings}.items()))
    for name, path in outcome["artifacts"].items():
        console.print(f"  {name}: {path}", highlight=False, soft_wrap=True)
    if outcome[MEMORY_PEAK_KEY] is not None:
        console.print(f"  peak RSS increase: {outcome[MEMORY_PEAK_KEY]:.1f} MiB")
    for note in outcome["notes"]:
        console.print(f"  note: {escape(note)}", highlight=False)
    for tool, reason in outcome["errors"].items():
        errors.print(f"  [yellow]{tool}[/yellow]: {escape(reason)}", highlight=False)
    return 0 if outcome["artifacts"] or outcome[MEMORY_PEAK_KEY] is not None else 1
