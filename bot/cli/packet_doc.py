"""A small document model written out twice, as Markdown and as HTML: headings,
paragraphs, lists, tables and images. Every text given to it is plain text — it is
escaped for each format here (Markdown's punctuation, HTML's markup), so a SKU or a
note that contains ``<script>`` or ``|`` stays text in both."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def md(text: object) -> str:
    """Plain text safe in Markdown (one line)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def h(text: object) -> str:
    """Plain text safe in HTML."""
    return html.escape(str(text), quote=True)


@dataclass
class Part:
    kind: str  # heading | paragraph | list | table | image | note
    text: str = ""
    level: int = 2
    items: Sequence[str] = ()
    header: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = ()
    src: str = ""


@dataclass
class Document:
    title: str
    parts: list[Part] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(Part("heading", text=text, level=level))

    def paragraph(self, text: str) -> None:
        self.parts.append(Part("paragraph", text=text))

    def note(self, text: str) -> None:
        self.parts.append(Part("note", text=text))

    def bullets(self, items: Sequence[str]) -> None:
        self.parts.append(Part("list", items=list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.parts.append(
            Part("table", header=list(header), rows=[[str(c) for c in row] for row in rows])
        )

    def image(self, src: str, alt: str) -> None:
        self.parts.append(Part("image", src=src, text=alt))

    # --- writers ----------------------------------------------------------------------

    def markdown(self) -> str:
        out = [f"# {md(self.title)}", ""]
        for part in self.parts:
            if part.kind == "heading":
                out += [f"{'#' * part.level} {md(part.text)}", ""]
            elif part.kind == "paragraph":
                out += [md(part.text), ""]
            elif part.kind == "note":
                out += [f"> {md(part.text)}", ""]
            elif part.kind == "list":
                out += [f"- {md(item)}" for item in part.items] + [""]
            elif part.kind == "table":
                out.append("| " + " | ".join(md(c) for c in part.header) + " |")
                out.append("|" + "|".join("---" for _ in part.header) + "|")
                out += ["| " + " | ".join(md(c) or " " for c in row) + " |" for row in part.rows]
                out.append("")
            elif part.kind == "image":
                out += [f"![{md(part.text)}]({part.src})", ""]
        return "\n".join(out).rstrip() + "\n"

    def html(self) -> str:
        body: list[str] = [f"<h1>{h(self.title)}</h1>"]
        for part in self.parts:
            if part.kind == "heading":
                level = min(max(part.level, 2), 6)
                body.append(f"<h{level}>{h(part.text)}</h{level}>")
            elif part.kind == "paragraph":
                body.append(f"<p>{h(part.text)}</p>")
            elif part.kind == "note":
                body.append(f'<p class="note">{h(part.text)}</p>')
            elif part.kind == "list":
                items = "".join(f"<li>{h(i)}</li>" for i in part.items)
                body.append(f"<ul>{items}</ul>")
            elif part.kind == "table":
                head = "".join(f"<th>{h(c)}</th>" for c in part.header)
                rows = "".join(
                    "<tr>" + "".join(f"<td>{h(c)}</td>" for c in row) + "</tr>" for row in part.rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif part.kind == "image":
                body.append(
                    f'<figure><img src="{h(part.src)}" alt="{h(part.text)}">'
                    f"<figcaption>{h(part.text)}</figcaption></figure>"
                )
        return HTML.format(title=h(self.title), body="\n".join(body))


HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font: 15px/1.5 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1d1c1d; max-width: 980px; margin: 32px auto; padding: 0 20px; }}
h1 {{ font-size: 28px; }} h2 {{ margin-top: 36px; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }}
th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f6f6f6; }}
figure {{ margin: 12px 0; }} img {{ max-width: 100%; border: 1px solid #ddd; }}
figcaption {{ color: #616061; font-size: 13px; }}
.note {{ color: #616061; border-left: 4px solid #ddd; padding-left: 10px; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
