"""Run each benchmark case once at its small size, with callgrind counting only that call.

Started by ``factorbench gate --mode callgrind`` as

    valgrind --tool=callgrind --instr-atstart=no python -P benchmarks/count_instructions.py \
        --helper fb_count.so --out suite.json [--bench REGEX]

with the commit under test first on PYTHONPATH. Everything else (imports, the
correctness check, building inputs, a warm-up call) runs uninstrumented; the helper's
client requests switch instrumentation on around the call and dump its count under a
label, which suite.json maps back to the benchmark. Implementations whose paradigm says
their counts do not reproduce (process pools, Dask clusters, GPUs) are not called: they
are listed as uncountable, judged by wall time only. Thread pools are limited to one
thread: valgrind serialises threads, and spinning workers would make counts vary.
"""

import argparse
import ctypes
import importlib
import itertools
import json
import re
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--helper", required=True, help="shared library with the client requests")
    parser.add_argument("--out", required=True, help="JSON file: the factorbench used, and per benchmark "
                        "its status with a dump label or a reason")
    parser.add_argument("--bench", help="regular expression on the asv benchmark name")
    args = parser.parse_args(argv)

    from factorbench.discovery import loaded_plugins
    from factorbench.measure import threads

    suite = importlib.import_module(f"{__package__ or 'benchmarks'}.suite")

    helper = ctypes.CDLL(args.helper)
    helper.fb_count_stop.argtypes = [ctypes.c_char_p]
    selected = re.compile(args.bench) if args.bench else None
    found = {}
    with threads.limited(1):
        for case in suite.benchmarks():
            size, *_ = case.params[0]
            for variants in itertools.product(*case.params[1:]):
                # named and selected as asv names the benchmark's small-size run
                name = f"kernels.{case.name}.time_call({', '.join(map(repr, (size, *variants)))})"
                if selected is not None and not selected.search(name):
                    continue
                # a paradigm's own word on whether its counts reproduce (older commits have none)
                uncountable = getattr(case.impl, "uncountable_reason", lambda settings: None)(case.settings)
                if uncountable:
                    found[name] = {"status": "uncountable", "reason": uncountable}
                    continue
                try:
                    inputs = suite.prepare(case, size, *variants)
                except NotImplementedError as exc:
                    found[name] = {"status": "skipped", "reason": str(exc)}
                    continue
                except suite.ImplementationError as exc:  # wrong or raising: the gate names it
                    found[name] = {"status": exc.status, "reason": str(exc)}
                    continue
                except Exception as exc:  # the harness's own failure (an answer it could not compute)
                    found[name] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
                    continue
                try:
                    case.call(*inputs)  # warm-up: lazy imports, JIT compilation, caches
                except Exception as exc:
                    found[name] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
                    continue
                label = f"case{len(found)}"
                helper.fb_count_start()
                case.call(*inputs)
                helper.fb_count_stop(label.encode())
                found[name] = {"status": "ok", "label": label}
    # where the code came from: the gate checks that the measured package is the build of
    # the commit under test; and which plugins could not be loaded against that build
    modules = {name: getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", None) or []), None)
               for name, module in list(sys.modules.items()) if "." not in name}
    plugin_errors = {plugin.name: plugin.error for plugin in loaded_plugins() if plugin.error}
    Path(args.out).write_text(json.dumps({"modules": modules, "plugin_errors": plugin_errors, "benchmarks": found},
                                         indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
