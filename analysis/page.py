"""The report page: its sections (tables, images, files) as data, and that data as one offline HTML page
(no scripts, no external resources)."""
from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[tuple[str, pd.DataFrame, list[Path]]] = field(default_factory=list)  # caption, shown, files
    images: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


@dataclass
class Report:
    out_dir: Path
    sections: list[Section] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    def section(self, title: str, text: str = "") -> Section:
        self.sections.append(Section(title, text))
        return self.sections[-1]


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.note{color:#a33}nav a{margin-right:1em}"""


def _link(path: Path, out_dir: Path) -> str:
    relative = os.path.relpath(path, out_dir)
    return f'<a href="{html.escape(relative)}">{html.escape(relative)}</a>'


def render_html(report: Report) -> str:
    out = report.out_dir
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>raydaug report</title>",
             f"<style>{_STYLE}</style></head><body><h1>raydaug report</h1>"]
    parts.append("<nav>" + "".join(f'<a href="#s{i}">{html.escape(s.title)}</a>'
                                   for i, s in enumerate(report.sections)) + "</nav>")
    for line in report.summary:
        parts.append(f"<p><b>{html.escape(line)}</b></p>")
    for note in report.notes:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    for index, section in enumerate(report.sections):
        parts.append(f'<h2 id="s{index}">{html.escape(section.title)}</h2>')
        if section.text:
            parts.append(f"<p>{html.escape(section.text)}</p>")
        for caption, frame, files in section.tables:
            parts.append(f"<h3>{html.escape(caption)}</h3>")
            parts.append(frame.to_html(index=False, na_rep="—", escape=True, border=0))
            if files:
                parts.append("<p>" + " · ".join(_link(f, out) for f in files) + "</p>")
        for image in section.images:
            parts.append(f'<p><img src="{html.escape(os.path.relpath(image, out))}" '
                         f'alt="{html.escape(image.stem)}"><br>{_link(image, out)}</p>')
        if section.files:
            parts.append("<p>" + " · ".join(_link(f, out) for f in section.files) + "</p>")
    parts.append(f"<p><small>generated {time.strftime('%Y-%m-%d %H:%M:%S')}</small></p></body></html>")
    return "\n".join(parts)
