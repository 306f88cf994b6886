"""JUnit XML of the gate's verdict: one test case per benchmark, regressions as failures,
which GitLab, Jenkins and most CI systems display natively."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from factorbench.results.verdict import FAILING, NOT_RUN


def write(verdict: dict, path: str | Path) -> Path:
    """Write ``verdict`` (``Verdict.to_dict()``) as a JUnit XML file at ``path``."""
    rows = verdict["rows"]
    suite = ET.Element("testsuite", name=f"factorbench gate ({verdict['mode']})", tests=str(len(rows)),
                       failures=str(sum(r["status"] in FAILING for r in rows)),
                       skipped=str(sum(r["status"] in NOT_RUN for r in rows)))
    ET.SubElement(ET.SubElement(suite, "properties"), "property", name="rule", value=verdict["rule"])
    for row in rows:
        module, _, name = row["benchmark"].partition(".")
        case = ET.SubElement(suite, "testcase", classname=f"factorbench.{module}", name=name or module)
        ratio = f"x{row['ratio']:.3f}" if row["ratio"] is not None else "no ratio"
        text = f"{row['status']}: {row['before']} -> {row['after']} {row['unit']} ({ratio}) {row['note']}".strip()
        if row["status"] in FAILING:
            ET.SubElement(case, "failure", message=text, type=row["status"])
        elif row["status"] in NOT_RUN:
            ET.SubElement(case, "skipped", message=text)
        else:
            ET.SubElement(case, "system-out").text = text
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(out, encoding="utf-8", xml_declaration=True)
    return out
