"""Report documents: sections of tables and figures, rendered to Markdown and HTML."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    path: Path
    caption: str
    width: int = 560


@dataclass
class Section:
    title: str
    note: str = ""
    table: Table | None = None
    figures: list[Figure] = field(default_factory=list)


def to_markdown(title: str, generated: str, sections: list[Section]) -> str:
    lines = [f"# {title}", "", generated, ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        if s.note:
            lines += [s.note, ""]
        if s.table:
            lines.append("| " + " | ".join(s.table.header) + " |")
            lines.append("|" + "---|" * len(s.table.header))
            lines += ["| " + " | ".join(row) + " |" for row in s.table.rows]
            lines.append("")
        lines += [f"![{f.caption}]({f.path.name})" for f in s.figures]
        if s.figures:
            lines.append("")
    return "\n".join(lines)


def to_html(title: str, generated: str, sections: list[Section]) -> str:
    """Self-contained HTML: figures are embedded, so the file can be mailed or archived alone."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        undefined=jinja2.StrictUndefined, autoescape=True)
    template = env.get_template("report.html.j2")
    view: list[dict[str, Any]] = []
    for s in sections:
        figures = [{"data": base64.b64encode(f.path.read_bytes()).decode(), "caption": f.caption,
                    "width": f.width} for f in s.figures]
        view.append({"title": s.title, "note": s.note, "table": s.table, "figures": figures})
    return template.render(title=title, generated=generated, sections=view)
