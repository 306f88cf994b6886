"""Print the requirements of factorbench with the given extras (default: all), one a line,
read from pyproject.toml: the container build installs them in a layer of their own, so
that a change to factorbench's code rebuilds only the layer that installs factorbench."""

import re
import sys
import tomllib
from pathlib import Path


def requirements(project: dict, extras: list[str]) -> list[str]:
    optional = project.get("optional-dependencies", {})
    found = list(project["dependencies"])
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in optional[extra]:
            # an extra made of other extras: factorbench[ticks,overlap,...]
            if inner := re.fullmatch(rf"{re.escape(project['name'])}\[(.+)\]", requirement):
                pending.extend(name.strip() for name in inner.group(1).split(","))
            else:
                found.append(requirement)
    return list(dict.fromkeys(found))


if __name__ == "__main__":
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    print("\n".join(requirements(project, sys.argv[1:] or ["all"])))
