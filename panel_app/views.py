"""The dashboard's views, built on the snapshot store: a list of decisions and one applicant."""

from __future__ import annotations

import pandas as pd
import panel as pn
from bokeh.models.widgets.tables import NumberFormatter

from panel_app.data_store import SnapshotStore

TITLES = {"partition_date": "Night", "SK_ID_CURR": "Application", "decision": "Decision", "grade": "Grade",
          "points": "Points", "probability_of_default": "PD"}
DECISION_COLOURS = {"granted": "#2e7d32", "refused": "#c62828", "refer to an advisor": "#ef6c00"}


def banner(store: SnapshotStore) -> pn.pane.Markdown:
    summary = store.model_summary()
    synthetic = "**SYNTHETIC DATA: no applicant here is a real person.** " if summary["synthetic"] else ""
    return pn.pane.Markdown(
        f"{synthetic}Model `{summary['model_version']}` · cross-validated ROC AUC {summary['cv_roc_auc']:.3f} · "
        f"refused at a probability of default of {summary['threshold']:.1%} or more, referred to an advisor between "
        f"{summary['refer_low']:.1%} and {summary['refer_high']:.1%} · snapshot of {summary['published_for']}",
        styles={"background": "#fff3cd" if summary["synthetic"] else "#eef", "padding": "4px 10px"},
    )


def applicant_view(store: SnapshotStore, sk_id: int) -> pn.Column:
    a = store.applicant(sk_id)
    row, details = a.row, a.details
    colour = DECISION_COLOURS.get(row["decision"], "#333")
    header = pn.pane.HTML(
        f"<h2 style='margin:0'>Application {sk_id} <span style='color:{colour}' class='decision'>{row['decision']}</span></h2>"
        f"<p>Probability of default <b>{row['probability_of_default']:.1%}</b> · grade <b>{row['grade']}</b> · "
        f"{row['points']} points · scored {row['partition_date']} by model {row['model_version']}</p>"
    )
    asked = pn.pane.Markdown(
        f"Asked for **{details.get('AMT_CREDIT', float('nan')):,.0f}**, repayments of **{details.get('AMT_ANNUITY', float('nan')):,.0f}**, "
        f"declared income **{details.get('AMT_INCOME_TOTAL', float('nan')):,.0f}** ({details.get('NAME_INCOME_TYPE', '')})."
    )
    reasons = pn.pane.Markdown(
        "### What weighed most against this application\n" + ("\n".join(f"1. {r}" for r in a.reasons) or "Nothing stood out.")
    )
    change = row.get("counterfactual")
    what_if = pn.pane.Markdown("### What would change the decision\n" + (change if isinstance(change, str) else "Granted: nothing to change."))
    comparison = a.comparison.rename(columns={
        "meaning": "What it measures", "value": "This client", "p25": "Lower quartile", "median_all": "Typical client",
        "p75": "Upper quartile"}).drop(columns="feature")
    table = pn.widgets.Tabulator(comparison.round(3), show_index=False, disabled=True, sizing_mode="stretch_width",
                                 layout="fit_data_stretch", widths={"What it measures": 330})
    return pn.Column(header, asked, reasons, what_if, "### This client against the population the model learned from", table,
                     sizing_mode="stretch_width")


def dashboard(store: SnapshotStore) -> pn.viewable.Viewable:
    if not store.available():
        return pn.pane.Markdown(f"No serving snapshot at `{store.path}` yet: run `credit-dagster run` first.")
    day = pn.widgets.Select(name="Night", options=["(all)", *store.days()])
    decision = pn.widgets.Select(name="Decision", options=["(all)", "granted", "refer to an advisor", "refused"])
    search = pn.widgets.TextInput(name="Application number starts with", placeholder="e.g. 1002")
    listing = pn.widgets.Tabulator(
        pd.DataFrame(), show_index=False, disabled=True, selectable=1, page_size=15, pagination="remote", width=560,
        name="decisions", titles=TITLES,
        formatters={"SK_ID_CURR": NumberFormatter(format="0"), "probability_of_default": NumberFormatter(format="0.0%")},
    )
    detail = pn.Column(pn.pane.Markdown("Select an application to see why it was decided so."), sizing_mode="stretch_width")

    def refresh(*_):
        listing.value = store.decisions(None if day.value == "(all)" else day.value,
                                        None if decision.value == "(all)" else decision.value, search.value)

    def show(event):
        if event.new:
            detail.objects = [applicant_view(store, int(listing.value.iloc[event.new[0]]["SK_ID_CURR"]))]

    for widget in (day, decision, search):
        widget.param.watch(refresh, "value")
    listing.param.watch(show, "selection")
    refresh()
    if len(listing.value):
        detail.objects = [applicant_view(store, int(listing.value.iloc[0]["SK_ID_CURR"]))]
    return pn.Column(banner(store), pn.Row(day, decision, search), pn.Row(listing, detail), sizing_mode="stretch_width")
