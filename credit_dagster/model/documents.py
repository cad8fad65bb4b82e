"""What the model's documents share: the templates (every value HTML-escaped, text from people or
data Markdown-escaped too) and Markdown made a page. The model card and the technical
documentation are rendered with them."""

from __future__ import annotations

import html
import re
from pathlib import Path

import jinja2
import markdown
import pandas as pd

from credit_dagster.model.charts import data_uri

FAIRNESS_SHOWN = ["group", "applicants", "approval_rate", "disparate_impact", "approval_rate_repaid", "equal_opportunity",
                  "default_rate", "default_rate_low", "default_rate_high", "predicted_default_rate"]
# Every value is HTML-escaped (autoescape), and text typed by people or read from data (a sign-off's
# reason, a group's name) is Markdown-escaped too: Markdown would turn `[x](javascript:…)` into a link.
TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                                undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=True)
# what makes a link, an image, code, emphasis or a table cell: parentheses and the rest stay as written
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|<>])")


def plain(text) -> str:
    """`text` shown as it is written, never read as Markdown."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def _table(records, digits: int = 4) -> str:
    frame = pd.DataFrame(records).round(digits)
    return frame.apply(lambda col: col.map(plain) if col.dtype == object else col).to_markdown(index=False)


TEMPLATES.filters.update(num=lambda value, spec: format(value, spec), table=_table, data_uri=data_uri, plain=plain)


def render_html(markdown_text: str, title: str) -> str:
    body = markdown.markdown(markdown_text, extensions=["tables"])
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px}blockquote{background:#fff3cd;padding:6px;margin:0}")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head>"
            f"<body>{body}</body></html>")
