"""Report figures as SVG text, drawn with matplotlib.

Why matplotlib SVG rather than an interactive JS library: the SVG is inlined into the one
HTML file, so the report needs no JavaScript and no CDN, opens offline and prints; and with
a fixed hash salt and no date in the metadata the same results give byte-identical figures.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

STYLE = {
    "svg.hashsalt": "factorbench",  # deterministic element ids
    "svg.fonttype": "none",  # text stays text: small, searchable, selectable
    "font.size": 9,
    "font.family": "sans-serif",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.6,
}
BASELINE_COLOURS = {"loop": "#8c8c8c", "vectorized": "#1f77b4", "library": "#ff7f0e"}
OTHER_COLOURS = ("#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                 "#393b79", "#637939", "#843c39")

MARKERS = ("o", "s", "^", "D", "v")
DASHES = ("-", "--", ":", "-.")


def paradigm_colours(paradigms: Sequence[str]) -> dict[str, str]:
    """One colour per paradigm, the same in every figure of a report."""
    others = sorted(set(paradigms) - set(BASELINE_COLOURS))
    return {**BASELINE_COLOURS, **{name: OTHER_COLOURS[i % len(OTHER_COLOURS)] for i, name in enumerate(others)}}


def plain(text: str) -> str:
    """Names from results are shown literally, never parsed as mathtext."""
    return str(text).replace("$", r"\$")


@contextlib.contextmanager
def styled() -> Iterator[None]:
    # matplotlib types rc_context's keys as a Literal of every rc name; STYLE's are valid
    with matplotlib.rc_context(STYLE):  # type: ignore[arg-type]
        yield


def to_svg(fig: Figure) -> str:
    buffer = io.StringIO()
    with styled():
        fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog: the SVG is inlined into HTML


def new_figure(width: float, height: float) -> tuple[Figure, Axes]:
    with styled():
        fig = Figure(figsize=(width, height), layout="constrained")
        return fig, fig.add_subplot()


def time_bars(labels: list[str], paradigms: list[str], per_element_s: list[float], colours: dict[str, str],
              floor_per_element_s: float | None) -> str:
    """Time per element of each ok row (fastest on top), log axis, with the bandwidth floor."""
    fig, ax = new_figure(7.0, 0.9 + 0.28 * len(labels))
    with styled():
        positions = range(len(labels))[::-1]
        ax.barh(list(positions), [t * 1e9 for t in per_element_s],
                color=[colours.get(p, "#444") for p in paradigms], height=0.7)
        ax.set_yticks(list(positions), [plain(label) for label in labels])
        ax.set_xscale("log")
        ax.set_xlabel("time per element [ns] (log; shorter is faster)")
        ax.grid(axis="y", visible=False)
        if floor_per_element_s:
            ax.axvline(floor_per_element_s * 1e9, color="#c00", linestyle="--", linewidth=1)
            ax.annotate("memory-bandwidth floor", (floor_per_element_s * 1e9, 1.0),
                        xycoords=("data", "axes fraction"), color="#c00", fontsize=8,
                        xytext=(0, 3), textcoords="offset points", va="bottom", ha="left")
    return to_svg(fig)


def scaling(series: dict[str, list[tuple[float, float]]], paradigm_of: dict[str, str], colours: dict[str, str],
            size_label: str) -> str:
    """perfplot-style: median time against input size, log-log, one line per implementation."""
    fig, ax = new_figure(7.0, 3.6)
    with styled():
        seen: dict[str, int] = {}
        for label, points in series.items():
            # Same colour per paradigm as everywhere; marker and dash tell its implementations apart.
            index = seen[paradigm_of[label]] = seen.get(paradigm_of[label], -1) + 1
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=MARKERS[index % len(MARKERS)],
                    markersize=4, label=plain(label), color=colours.get(paradigm_of[label], "#444"),
                    linestyle=DASHES[index % len(DASHES)])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(plain(size_label))
        ax.set_ylabel("median time per call [s]")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return to_svg(fig)


def parallel_speedup(series: dict[str, list[tuple[float, float]]], setting: str) -> str:
    """Speed-up over the same implementation at its smallest worker/thread count."""
    fig, ax = new_figure(6.0, 3.2)
    with styled():
        top = 1.0
        for label, points in series.items():
            points = sorted(points)
            counts = [p[0] for p in points]
            base = points[0][1]
            ax.plot(counts, [base / p[1] for p in points], marker="o", markersize=4, label=plain(label))
            top = max(top, max(counts) / counts[0])
        ax.plot([1, top], [1, top], color="#999", linestyle=":", linewidth=1, label="ideal (linear)")
        ax.set_xlabel(plain(setting))
        ax.set_ylabel(f"speed-up vs fewest {plain(setting)}")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return to_svg(fig)


def latency(distributions: dict[str, dict]) -> str:
    """Per-call latency per label: box of the samples (whiskers P1-P99) and P50/P95/P99 marks."""
    labels = list(distributions)
    fig, ax = new_figure(7.0, 0.9 + 0.35 * len(labels))
    with styled():
        positions = list(range(len(labels)))[::-1]
        for pos, label in zip(positions, labels):
            stats = distributions[label]
            samples = [s for s in stats.get("samples") or [] if isinstance(s, (int, float)) and s > 0]
            if samples:
                ax.boxplot([samples], positions=[pos], orientation="horizontal", whis=(1, 99), showfliers=False,
                           widths=0.5, medianprops={"color": "#1f77b4"})
            for key, marker, colour in (("p50", "o", "#1f77b4"), ("p95", "^", "#ff7f0e"), ("p99", "s", "#d62728")):
                value = stats.get(key)
                if isinstance(value, (int, float)) and value > 0:
                    ax.plot([value], [pos], marker=marker, color=colour, linestyle="none",
                            label=key.upper() if pos == positions[0] else None)
        ax.set_yticks(positions, [plain(label) for label in labels])
        ax.set_xscale("log")
        ax.set_xlabel("latency per call [s] (log)")
        ax.legend(fontsize=7, loc="lower right")
    return to_svg(fig)


def memory_peaks(labels: list[str], mib: list[float]) -> str:
    fig, ax = new_figure(6.0, 0.9 + 0.28 * len(labels))
    with styled():
        positions = list(range(len(labels)))[::-1]
        ax.barh(positions, mib, color="#9467bd", height=0.7)
        ax.set_yticks(positions, [plain(label) for label in labels])
        ax.set_xlabel("peak RSS increase during calls [MiB]")
        ax.grid(axis="y", visible=False)
    return to_svg(fig)


def flame(stacks: dict[tuple[str, ...], float], title: str, unit: str = "MiB") -> str:
    """An icicle flame graph (root on top) of ``stacks``: frame tuples, outermost first, to weights.

    Used for memray's allocations live at the high-water mark: memray's own HTML flame
    graph loads its scripts from a CDN, so it cannot be embedded in an offline report.
    """
    tree: dict = {}
    for frames, weight in stacks.items():
        node = tree
        for frame in frames:
            child = node.setdefault(frame, {"weight": 0.0, "children": {}})
            child["weight"] += weight
            node = child["children"]
    total = sum(child["weight"] for child in tree.values()) or 1.0
    depth = _depth(tree)
    fig, ax = new_figure(9.0, 0.6 + 0.22 * max(depth, 1))
    with styled():
        _draw(ax, tree, 0.0, 0, total, fig.get_figwidth())
        ax.set_xlim(0, 1)
        ax.set_ylim(depth, 0)
        ax.axis("off")
        ax.set_title(plain(f"{title}: {total:,.1f} {unit} live at the high-water mark"), fontsize=9, loc="left")
    return to_svg(fig)


def _depth(tree: dict) -> int:
    return 1 + max((_depth(child["children"]) for child in tree.values()), default=-1) if tree else 0


def _draw(ax, tree: dict, left: float, level: int, total: float, width_in: float) -> None:
    palette = ("#f4a261", "#e76f51", "#f6bd60", "#e9c46a", "#f28482", "#f7a072")
    for index, (frame, child) in enumerate(sorted(tree.items(), key=lambda item: -item[1]["weight"])):
        width = child["weight"] / total
        ax.add_patch(Rectangle((left, level), width, 0.95, facecolor=palette[(level + index) % 6],
                                                  edgecolor="white", linewidth=0.4))
        chars = int(width * width_in * 72 / 5.2)  # about 5 pt per character at 7 pt
        if chars >= 4:
            text = frame if len(frame) <= chars else frame[:chars - 1] + "…"
            ax.text(left + 0.002, level + 0.5, plain(text), fontsize=7, va="center", ha="left", clip_on=True)
        _draw(ax, child["children"], left, level + 1, total, width_in)
        left += width
