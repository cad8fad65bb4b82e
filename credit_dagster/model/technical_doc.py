"""The model's technical documentation, per version, in the structure of the EU AI Act's Annex IV
with the EBA/GL/2020/06 4.3.3 expectations each part answers (Markdown, HTML and PDF).

Written beside the version's artefacts when the model card is (registration, sign-off) and again
after each back-test, which leaves its figures for the version in `backtest.json`. Every figure
comes from the registry (`metadata.json`, the history) or from that file: the prose lives in
`templates/technical_documentation.md.j2`, the numbers never do.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from credit_dagster.core import pdf, settings
from credit_dagster.model import fairness
from credit_dagster.model.documents import FAIRNESS_SHOWN, TEMPLATES, render_html
from credit_dagster.model.metadata import ModelMetadata

NAME = "technical_documentation"
BACKTEST = "backtest.json"
COMPARED = ["candidate", "roc_auc", "roc_auc_low", "roc_auc_high", "pr_auc", "brier", "ks", "business_cost"]
BACKTEST_SHOWN = ["vintage", "decisions", "granted", "with_outcome", "defaults", "default_rate", "predicted_rate", "realized_auc",
                  "realized_auc_low", "realized_auc_high", "development_granted_auc", "psi", "verdict"]


def render(meta: ModelMetadata, *, history: list[dict], previous: ModelMetadata | None, backtest: dict | None) -> str:
    """The document in Markdown."""
    flags = fairness.flags(meta.fairness, fairness.configured_tolerances())
    promoted = [e for e in history if e["event"].startswith("promoted")]
    added = sorted(set(meta.features_used) - set(previous.features_used)) if previous else []
    removed = sorted(set(previous.features_used) - set(meta.features_used)) if previous else []
    return TEMPLATES.get_template(f"{NAME}.md.j2").render(
        meta=meta, m=meta.cv_metrics, spread=meta.seed_spread, previous=previous, added=added, removed=removed,
        lender=settings.current().lender_name, written_at=datetime.now(UTC).isoformat(timespec="seconds"),
        champion_sentence=(f"{promoted[-1]['event']} on {promoted[-1]['at'][:10]}: {promoted[-1]['reason']}" if promoted
                           else "not promoted to champion"),
        comparison=[{k: r[k] for k in COMPARED if k in r} for r in meta.comparison],
        top_features=", ".join(r["feature"] for r in meta.importance_top[:3]),
        flags_sentence=("; ".join(flags) + " (signed off: part 5)") if flags else "no group flagged.",
        fairness_tables={a: [{k: r[k] for k in FAIRNESS_SHOWN if k in r} for r in rows] for a, rows in meta.fairness.items()},
        history=[{"at": e["at"][:19], "event": e["event"], "reason": e.get("reason", "")} for e in history],
        out_of_time=next((e["reason"] for e in reversed(history) if e["event"] == "out-of-time test"), None),
        backtest=[{k: r.get(k) for k in BACKTEST_SHOWN} for r in backtest["vintages"]] if backtest else None,
        backtest_at=backtest["at"] if backtest else None,
    )


def write(registry, version: str) -> Path:
    """Write the version's document (.md, .html, .pdf) beside its artefacts; the HTML's path."""
    folder = registry.root / version
    versions = registry.versions()
    before = versions[: versions.index(version)]
    previous = registry.metadata(before[-1]) if before else None
    backtest = json.loads((folder / BACKTEST).read_text()) if (folder / BACKTEST).exists() else None
    text = render(registry.metadata(version), history=[e for e in registry.history() if e["version"] == version],
                  previous=previous, backtest=backtest)
    title = f"Technical documentation of model {version}"
    page = render_html(text, title)
    (folder / f"{NAME}.md").write_text(text)
    (folder / f"{NAME}.html").write_text(page)
    try:
        (folder / f"{NAME}.pdf").write_bytes(pdf.html_to_pdf(title, page[page.index("<body>") + 6 : page.index("</body>")]))
    except pdf.Unprintable:  # a name no font prints: the HTML and Markdown say everything
        (folder / f"{NAME}.pdf").unlink(missing_ok=True)
    return folder / f"{NAME}.html"


def publish(registry, version: str, reports_dir: Path) -> None:
    """The version's document as `reports_dir/technical_documentation.html/.pdf` beside its model
    card: what the dashboard's supervision view links to, behind its sign-in."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    for suffix in (".html", ".pdf"):
        source, target = registry.root / version / f"{NAME}{suffix}", reports_dir / f"{NAME}{suffix}"
        if source.exists():
            target.write_bytes(source.read_bytes())
        else:
            target.unlink(missing_ok=True)


def record_backtest(registry, version: str, vintages: pd.DataFrame) -> Path:
    """Leave a back-test's figures of `version` beside it and write its document again."""
    rows = vintages[vintages["model_version"] == version]
    figures = {"at": datetime.now(UTC).isoformat(timespec="seconds"),
               "vintages": json.loads(rows.to_json(orient="records"))}
    path = registry.root / version / BACKTEST
    path.write_text(json.dumps(figures, indent=1))
    os.chmod(path, 0o600)
    return write(registry, version)
