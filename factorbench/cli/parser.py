"""Argument types and the parser: every user mistake becomes a UsageError (one line, exit 2)."""

from __future__ import annotations

import argparse
import re

DEFAULT_JSON = "reports/results.json"


class UsageError(Exception):
    """A user mistake: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def count(text: str) -> int:
    """A positive integer, also written as 1e7 or 10_000_000."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def counts(text: str) -> list[int]:
    return [count(part) for part in text.split(",") if part]


def cpu_ids(text: str) -> list[int]:
    """CPU numbers as the kernel counts them: 0,1,3."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"expected CPU numbers like 0,1, got {text!r}")
    return sorted({int(part) for part in parts})


def key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    for convert in (count, number):
        try:
            return key, convert(value)
        except argparse.ArgumentTypeError:
            pass
    return key, value


def schedulers(text: str) -> list[str]:
    from factorbench.parallel.schedulers import parse_scheduler

    try:
        values = [parse_scheduler(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected one or more of threads, local-cluster, tcp://HOST:PORT, got {text!r}")
    return values


def chunk_sizes(text: str) -> list[int | str]:
    from factorbench.parallel.schedulers import AUTO_CHUNK

    try:
        values = [AUTO_CHUNK if part == AUTO_CHUNK else count(part) for part in text.split(",") if part]
    except argparse.ArgumentTypeError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected {AUTO_CHUNK} or positive integers (elements per block), "
                                         f"got {text!r}")
    return values


def memory_limit(text: str) -> str:
    """What `dask worker --memory-limit` takes: auto, a size (4GiB) or a fraction of RAM (0.5)."""
    if text == "auto":
        return text
    from dask.utils import parse_bytes

    try:
        parse_bytes(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, a size such as 4GiB, or a fraction of memory such "
                                         f"as 0.5, got {text!r}") from None
    return text


BYTE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def byte_size(text: str) -> int:
    """'2g', '512MiB', '1.5GB' or a count of bytes, as podman's --memory reads them (the
    units are binary: 2g = 2 GiB)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 2g, 512MiB or 1.5GB (binary units), got {text!r}")
    return int(float(match[1]) * BYTE_UNITS[match[2]])


def add_plugin_option(parser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_PATH",
                        help="also load this plugin: a module name or a .py file defining KERNEL(S) and/or "
                             "PARADIGM (repeatable; besides the factorbench.plugins entry points and "
                             "[tool.factorbench] plugins in pyproject.toml)")
