"""Finding plug-in modules: the built-in ones by package, other packages' through plugins.

Kernels and workloads are one module each inside factorbench. A *plugin* is a module of
another package (or a .py file) defining ``KERNEL``/``KERNELS`` and/or ``PARADIGM``, named
by any of:

- the entry point group ``factorbench.plugins`` of an installed distribution,
- ``[tool.factorbench] plugins = [...]`` in the pyproject.toml found from the current
  directory upwards (paths there are relative to that file; a folder stands for each of
  its .py files not starting with "_"),
- the ``FACTORBENCH_PLUGINS`` environment variable (``os.pathsep``-separated), which
  ``use_plugins`` extends so that every process a run starts (workers, profilers, asv,
  callgrind) loads the same plugins.

A plugin that fails to import is recorded with its error and the rest goes on.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import pkgutil
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

ENTRY_POINT_GROUP = "factorbench.plugins"
PLUGIN_ENV = "FACTORBENCH_PLUGINS"


def discover(package: str, attribute: str) -> dict[str, Any]:
    """{obj.name: obj} for the ``attribute`` of every module in ``package``, sorted by name."""
    path = importlib.import_module(package).__path__
    found = {}
    for module in pkgutil.iter_modules(path):
        obj = getattr(importlib.import_module(f"{package}.{module.name}"), attribute)
        found[obj.name] = obj
    return dict(sorted(found.items()))


def choose(known: Mapping[str, Any], name: str, what: str) -> Any:
    """``known[name]``, or a ValueError that lists the valid choices."""
    if name not in known:
        raise ValueError(f"unknown {what} {name!r}; choose from: {', '.join(known) or '(none installed)'}")
    return known[name]


class PluginError(ValueError):
    """Plugins that cannot be used together (two define one name): one line, exit 2."""


@dataclass(frozen=True)
class Plugin:
    name: str
    """The module name, or the .py file's absolute path."""
    origin: str
    """Where it was named: entry point, --plugin, pyproject.toml path, FACTORBENCH_PLUGINS."""
    module: ModuleType | None
    error: str | None = None
    """Why it could not be imported (then module is None)."""

    def describe(self) -> str:
        return f"plugin {self.name} (from {self.origin})"


def is_path(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec or (os.altsep is not None and os.altsep in spec)


def normalise(spec: str, relative_to: Path | None = None) -> str:
    """A module name as is; a file as its absolute path (so child processes find it too)."""
    spec = spec.strip()
    if not is_path(spec):
        return spec
    path = Path(spec).expanduser()
    return str((relative_to / path if relative_to and not path.is_absolute() else path).resolve())


def project_file(start: Path | None = None) -> Path | None:
    """The nearest pyproject.toml from ``start`` (default: the current directory) upwards."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def project_plugins(start: Path | None = None) -> tuple[list[str], Path | None]:
    """The ``[tool.factorbench] plugins`` of the nearest pyproject.toml, normalised."""
    path = project_file(start)
    if path is None:
        return [], None
    try:
        table = tomllib.loads(path.read_text()).get("tool", {}).get("factorbench", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PluginError(f"cannot read {path}: {exc}") from None
    plugins = table.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise PluginError(f"{path}: [tool.factorbench] plugins must be a list of module names or .py paths, "
                          f"got {plugins!r}")
    return [file for spec in plugins for file in in_folder(normalise(spec, path.parent))], path


def in_folder(spec: str) -> list[str]:
    """A folder's plugin files (a team's bench/, as asv's benchmarks/), or the spec itself."""
    if is_path(spec) and Path(spec).is_dir():
        return sorted(str(file) for file in Path(spec).glob("*.py") if not file.name.startswith("_"))
    return [spec]


def env_plugins() -> list[str]:
    return [part for part in os.environ.get(PLUGIN_ENV, "").split(os.pathsep) if part.strip()]


_origins: dict[str, str] = {}
"""Where this process was told of a plugin it put in the environment (e.g. --plugin)."""


def use_plugins(specs: Iterable[str], origin: str = "--plugin") -> None:
    """Add plugins for this process and every process it starts (through the environment);
    the caller clears the caches built from them (``registry.use_plugins`` does)."""
    given = [normalise(spec) for spec in specs]
    for spec in given:
        _origins.setdefault(spec, origin)
    wanted = [*env_plugins(), *given]
    os.environ[PLUGIN_ENV] = os.pathsep.join(dict.fromkeys(wanted))
    loaded_plugins.cache_clear()


def requested() -> list[tuple[str, str]]:
    """(spec, origin) for every plugin named anywhere, the first naming of each kept."""
    found: dict[str, str] = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.module, f"entry point {entry.name!r} of {entry.dist.name if entry.dist else '?'}")
    names, path = project_plugins()
    for spec in names:
        found.setdefault(spec, str(path))
    for spec in env_plugins():
        found.setdefault(spec, _origins.get(spec, PLUGIN_ENV))
    return list(found.items())


def missing_plugin(spec: str) -> str | None:
    """Why ``spec`` names nothing there is (no such file, no such module), or None."""
    if is_path(spec):
        path = Path(normalise(spec))
        return None if path.is_file() else f"no such file {path}"
    try:
        found = importlib.util.find_spec(spec) is not None
    except (ImportError, ValueError):  # a missing parent package
        found = False
    return None if found else f"no module named {spec!r}"


def import_plugin(spec: str) -> ModuleType:
    if not is_path(spec):
        return importlib.import_module(spec)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"no such file {path}")
    # Named after the file, as `python file.py` would see it, so workers can unpickle its functions.
    name = path.stem
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@cache
def loaded_plugins() -> tuple[Plugin, ...]:
    plugins = []
    for spec, origin in requested():
        try:
            plugins.append(Plugin(spec, origin, import_plugin(spec)))
        except Exception as exc:  # a plugin's bug must not take the built-ins down
            plugins.append(Plugin(spec, origin, None, f"{type(exc).__name__}: {exc}"))
    return tuple(plugins)


def plugin_errors() -> dict[str, str]:
    """{plugin description: one-line error} for plugins that failed to import."""
    return {p.describe(): p.error for p in loaded_plugins() if p.error is not None}
