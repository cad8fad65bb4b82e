"""The model card: what a credit committee reads before trusting the model (Markdown and HTML)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import jinja2
import markdown
import pandas as pd

from credit_dagster.model import fairness
from credit_dagster.model.charts import data_uri
from credit_dagster.model.metadata import ModelMetadata

FAIRNESS_SHOWN = ["group", "applicants", "approval_rate", "disparate_impact", "approval_rate_repaid", "equal_opportunity",
                  "default_rate", "default_rate_low", "default_rate_high", "predicted_default_rate"]
# Every value is HTML-escaped (autoescape), and text typed by people or read from data (a sign-off's
# reason, a group's name) is Markdown-escaped too: Markdown would turn `[x](javascript:…)` into a link.
_TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                                undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=True)
# what makes a link, an image, code, emphasis or a table cell: parentheses and the rest stay as written
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|<>])")


def plain(text) -> str:
    """`text` shown as it is written, never read as Markdown."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def _table(records, digits: int = 4) -> str:
    frame = pd.DataFrame(records).round(digits)
    return frame.apply(lambda col: col.map(plain) if col.dtype == object else col).to_markdown(index=False)


_TEMPLATES.filters.update(num=lambda value, spec: format(value, spec), table=_table, data_uri=data_uri, plain=plain)


def render_markdown(meta: ModelMetadata, *, champion: dict, charts: dict[str, bytes], synthetic: bool,
                    tolerances: fairness.Tolerances = fairness.DEFAULT_TOLERANCES) -> str:
    """The card in Markdown, from `templates/model_card.md.j2` (the prose lives there)."""
    spread = meta.seed_spread
    return _TEMPLATES.get_template("model_card.md.j2").render(
        meta=meta, m=meta.cv_metrics, sc=meta.scorecard, sel=meta.feature_selection, champion=champion,
        charts=charts, synthetic=synthetic, tolerances=tolerances, spread=spread,
        spread_pairs=list(zip(spread["seeds"], spread["roc_auc_pooled"], strict=True)) if spread else [],
        unselected=next((r for r in meta.comparison if r["candidate"].endswith("_no_selection")), None),
        flags=fairness.flags(meta.fairness, tolerances), four_fifths=fairness.four_fifths(meta.fairness),
        fairness_tables={attr: [{k: r[k] for k in FAIRNESS_SHOWN if k in r} for r in rows] for attr, rows in meta.fairness.items()},
    )


def render_html(markdown_text: str, title: str) -> str:
    body = markdown.markdown(markdown_text, extensions=["tables"])
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px}blockquote{background:#fff3cd;padding:6px;margin:0}")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head>"
            f"<body>{body}</body></html>")


def write(registry, version: str, reports_dir: Path) -> Path:
    """Render the card of `version` (with its promotion or sign-off, if any) next to its artefacts
    and as `reports_dir/model_card.html`; return the latter."""
    model = registry.load(version)
    folder = registry.root / version
    events = [e for e in registry.history() if e["version"] == version and e["event"].startswith("promoted")]
    champion = {"promoted": bool(events), "reason": events[-1]["reason"] if events else "not promoted; see champion_model",
                "out_of_time": next((e["reason"] for e in reversed(registry.history())
                                     if e["version"] == version and e["event"] == "out-of-time test"), None)}
    # the shap pictures exist for models registered since they were added
    chart_png = {name: (folder / f"{name}.png").read_bytes() for name in ("cost_curve", "reliability", "shap_beeswarm", "shap_dependence")
                 if (folder / f"{name}.png").exists()}
    text = render_markdown(model.metadata, champion=champion, charts=chart_png, synthetic=model.metadata.synthetic,
                           tolerances=fairness.configured_tolerances())
    html = render_html(text, f"Model card {version}")
    (folder / "model_card.md").write_text(text)
    (folder / "model_card.html").write_text(html)
    latest = Path(reports_dir) / "model_card.html"
    latest.parent.mkdir(parents=True, exist_ok=True)
    latest.write_text(html)
    return latest
