"""results.md and results.json from the sections of one run."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import Figure, Section


def number(x: float) -> str:
    """Three significant figures below 100 (0.680, 1.00, 55.0), whole numbers above (413, 1,090)."""
    return f"{x:#.3g}" if abs(x) < 100 else f"{x:,.0f}"


def figure_cells(f: Figure) -> list[str]:
    """[name, median, min-max (n), goal, met/missed]."""
    s = f.stat
    goal = "-" if f.goal is None else f"{'>=' if f.higher else '<='} {number(f.goal)}{f.unit}"
    met = "-" if f.met is None else ("met" if f.met else "**missed**")
    spread = f"{number(s.min)} - {number(s.max)}" if s.n > 1 else "-"
    return [f.name, f"{number(s.median)}{f.unit}", f"{spread} (n={s.n})", goal, met]


def pipe_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub pipe table; '|' inside cells escaped."""
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(r) for r in rows)])


FIGURE_HEADER = ["figure", "median", "min - max", "goal", "met?"]


def section_markdown(section: Section) -> str:
    """A section: heading, its figures (with notes), then its notes and tables."""
    parts = [f"## {section.title}", f"_{section.seconds:.0f} s of this run._"]
    if section.error:
        parts.append(f"**Failed:** `{section.error}`")
    if section.figures:
        parts.append(pipe_table(FIGURE_HEADER, [figure_cells(f) for f in section.figures]))
        notes = [f"- {f.name}: {f.note}" for f in section.figures if f.note]
        parts += ["\n".join(notes)] if notes else []
    parts += section.notes
    return "\n\n".join(parts)


def machine_markdown(machine: dict) -> str:
    """The machine and load lines."""
    load = lambda key: ", ".join(f"{x:.2f}" for x in machine[key])  # noqa: E731
    lines = [f"- CPU: {machine['cpu']} ({machine['cores']} cores visible, {machine['usable_cores']} usable); "
             f"{machine['memory_gib']:.0f} GiB RAM; {machine['platform']}",
             f"- Python {machine['python']}, torch {machine['torch']} ({machine['torch_parallel']}); "
             f"torch threads in this run: {machine['threads']} unless a figure says otherwise "
             f"(torch's default here: {machine['default_threads']})",
             f"- load average (1, 5, 15 min): {load('load_start')} at the start, {load('load_end')} at the end"]
    if machine["shared"]:
        lines.append("- **Shared machine:** other jobs were running (see the load), so absolute times are noisy; "
                     "the ratios pair both sides within each repetition.")
    return "\n".join(lines)


def markdown(run: dict, sections: list[Section]) -> str:
    """The whole results.md: header, machine, summary of every figure, then each section."""
    summary = [figure_cells(f) for s in sections for f in s.figures if f.goal is not None]
    failed = [s.title for s in sections if s.error]
    head = [f"# popnb benchmarks\n\nOne run of `{run['command']}`, started {run['started']}, "
            f"{run['wall_s'] / 60:.1f} min wall time. Every figure is a ratio measured in this run on this machine: "
            f"the median of the repetitions after {run['warmup']} warm-up repetition(s), with min and max "
            "(n = repetitions) and the goal beside it.",
            "## Machine", machine_markdown(run["machine"]),
            "## Summary", pipe_table(FIGURE_HEADER, summary)]
    if failed:
        head.append("Failed benchmarks: " + ", ".join(failed))
    return "\n\n".join(head + [section_markdown(s) for s in sections]) + "\n"


def write(out: Path, run: dict, sections: list[Section]) -> tuple[Path, Path]:
    """<out>/results.md and <out>/results.json; returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "results.md", out / "results.json"
    md.write_text(markdown(run, sections), encoding="utf-8")
    doc = {**run, "sections": [s.to_dict() for s in sections]}
    js.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return md, js
