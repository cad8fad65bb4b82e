"""The model card: what a credit committee reads before trusting the model (Markdown and HTML)."""

from __future__ import annotations

from pathlib import Path

from credit_dagster.model import fairness, technical_doc
from credit_dagster.model.documents import FAIRNESS_SHOWN, TEMPLATES, render_html
from credit_dagster.model.metadata import ModelMetadata


def render_markdown(meta: ModelMetadata, *, champion: dict, charts: dict[str, bytes], synthetic: bool,
                    tolerances: fairness.Tolerances = fairness.DEFAULT_TOLERANCES) -> str:
    """The card in Markdown, from `templates/model_card.md.j2` (the prose lives there)."""
    spread = meta.seed_spread
    return TEMPLATES.get_template("model_card.md.j2").render(
        meta=meta, m=meta.cv_metrics, sc=meta.scorecard, sel=meta.feature_selection, champion=champion,
        charts=charts, synthetic=synthetic, tolerances=tolerances, spread=spread,
        spread_pairs=list(zip(spread["seeds"], spread["roc_auc_pooled"], strict=True)) if spread else [],
        unselected=next((r for r in meta.comparison if r["candidate"].endswith("_no_selection")), None),
        flags=fairness.flags(meta.fairness, tolerances), four_fifths=fairness.four_fifths(meta.fairness),
        fairness_tables={attr: [{k: r[k] for k in FAIRNESS_SHOWN if k in r} for r in rows] for attr, rows in meta.fairness.items()},
    )


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
    technical_doc.write(registry, version)  # the Annex IV document, with the same sign-off
    latest = Path(reports_dir) / "model_card.html"
    latest.parent.mkdir(parents=True, exist_ok=True)
    latest.write_text(html)
    technical_doc.publish(registry, version, Path(reports_dir))
    return latest
