"""The dashboard's page: a list of decisions with one selection, and four views of it.

The list is a native list box (keyboard: Tab to it, arrows to move, the detail follows), and
the detail is always drawn from the list's value: after any filter, search or click, what is
highlighted is what is shown, or the detail says that nothing matches.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import panel as pn

from credit_dagster.core import formats, refer_all
from credit_dagster.review import cases as review
from credit_dagster.review import letters
from credit_dagster.review.journal import ReviewJournal
from panel_app import auth, charts, metrics
from panel_app import view_model as vm
from panel_app.data_store import SnapshotStore

ALL = "(all)"
# native inputs keep the browser's 13px unless told inside their own shadow root
INPUT_CSS = [":host select, :host input { font-size: 16px; }"]
SECTIONS = ["Decision", "Compare", "What if", "Review", "Supervisor"]
SUPERVISOR_ONLY = {"Supervisor"}  # what an advisor is not shown, and is refused if asked for anyway
# run in the browser each time the confirmation changes (Panel's jscallback): focus it, once the
# view under it is drawn, so keyboard and screen-reader users stay on the case they acted on
FOCUS_WHAT_HAPPENED = """
setTimeout(() => {
  const view = Bokeh.index.find_one(source);
  if (view != null && source.text) { view.el.setAttribute('tabindex', '-1'); view.el.focus(); }
}, 150);
"""
SWITCH_FOLLOW_MS = 3000  # how often each open page reads the "refer everything" switch (a small journal read)
# Document-wide: Bokeh and Panel widgets size their text from this variable (12px by default).
PAGE_CSS = ":root { --bokeh-font-size: 16px; font-size: 16px; } body { margin: 0 1rem; }"
# Inside each HTML pane (its own shadow root) and in exported pages.
CSS = """
:host, body { font-family: system-ui, sans-serif; color: #212121; font-size: 16px; line-height: 1.45; }
a { color: #0d47a1; }
h1 { font-size: 1.6rem; margin: .3rem 0; } h2 { font-size: 1.35rem; margin: .6rem 0 .3rem; } h3 { font-size: 1.15rem; margin: .8rem 0 .3rem; }
table.facts { border-collapse: collapse; width: 100%; } table.facts th, table.facts td { text-align: left; padding: .25rem .5rem;
  border-bottom: 1px solid #e0e0e0; vertical-align: top; } table.facts th { font-weight: 600; width: 45%; }
.decision { font-weight: 700; } .synthetic { background: #fff3cd; padding: .4rem .8rem; border: 1px solid #8a6d00; }
.note { color: #424242; } .chart-text { color: #424242; font-size: 16px; }
.scroll { overflow-x: auto; max-width: 100%; }
.narrow-only { display: none; } @media (max-width: 900px) { .narrow-only { display: block; } }
@media print { .bk-input-group, .no-print { display: none !important; } }
"""


def _facts(rows: list[tuple[str, str]], caption: str | None = None) -> str:
    cap = f"<caption class='note' style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    body = "".join(f"<tr><th scope='row'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table class='facts'>{cap}{body}</table>"


def _scrolling(table: pd.DataFrame, label: str) -> str:
    """A wide table that scrolls sideways inside the page on a narrow screen, instead of widening it;
    a region the keyboard can reach and scroll (Tab to it, then the arrow keys), said so where the
    screen is narrow (a cut-off last column gives no cue by itself)."""
    return (f"<p class='narrow-only note'>{len(table.columns)} columns: scroll the table sideways to see them all "
            "(Tab to it, then the arrow keys).</p>"
            f"<div class='scroll' tabindex='0' role='region' aria-label='{html.escape(label)}'>"
            f"{table.to_html(index=False, classes='facts', border=0)}</div>")


def _html(text: str, **kwargs) -> pn.pane.HTML:
    return pn.pane.HTML(text, sizing_mode="stretch_width", stylesheets=[CSS], **kwargs)


def _reasons_and_change(v: vm.ClientView) -> tuple[str, str]:
    """The model's reasons as list items (escaped) and what would change its decision, in words."""
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in v.reasons) or "<li>Nothing stood out.</li>"
    return reasons, v.counterfactual or ("Granted: nothing to change." if v.model_decision == "Granted" else "No change was searched.")


def standing_html(v: vm.ClientView, title: str = "") -> str:
    """The decision that stands, who took it and when: the first thing every view of one application says."""
    return (f"<h2>{html.escape(title or f'Application {v.sk_id}')}: <span class='decision' style='color:{v.colour}'>"
            f"{v.icon} {v.decision}</span></h2><p class='standing'><b>{html.escape(v.standing)}</b></p>")


def decision_html(v: vm.ClientView) -> str:
    """The decision in words, as shown and as exported (no colour-only meaning): the one that
    stands, then the model's assessment."""
    reasons, change = _reasons_and_change(v)
    # a missing history is said as a fact, apart from the reasons: it is no fault of the client's
    history = f"<p>Not yet on file: {html.escape(v.history_note)}</p>" if v.history_note else ""
    legend = "".join(f"<li><b>{g}</b>: {html.escape(t)}</li>" for g, t in v.grade_legend)
    assessment = (f"<h3>The model's assessment</h3><p>The model's own decision: <b>{html.escape(v.model_decision)}</b>. "
                  "The decision above is a person's, after review.</p>" if v.by_person else "")
    return (
        f"{standing_html(v)}{assessment}"
        f"<p>Probability of default <b>{v.probability_text}</b> · grade <b>{v.grade}</b> · <b>{v.points}</b> points · "
        f"scored on the night of {v.night} by model {html.escape(v.model_version)}</p>"
        f"<p class='chart-text'>{html.escape(v.band_sentence)}</p>"
        f"<h3>{html.escape(v.reasons_heading)}</h3><ol>{reasons}</ol>{history}"
        f"<h3>What would change the decision</h3><p>{html.escape(change)}</p>"
        f"<h3>Points and grades</h3><p>{html.escape(v.points_sentence)}</p><ul>{legend}</ul>"
    )


def export_html(v: vm.ClientView, user: str) -> str:
    """A self-contained page for the meeting with the client (print or keep)."""
    sections = "".join(f"<h3>{html.escape(s)}</h3>{_facts(rows)}" for s, rows in v.application.items())
    steps = _facts([(b.label, f"{b.points:+.0f} points") for b in v.contributions[1:]])
    synthetic = "<p class='synthetic'>SYNTHETIC DATA: no applicant here is a real person.</p>" if v.synthetic else ""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Decision on application {v.sk_id}</title>"
            f"<style>{CSS}</style></head><body>{synthetic}{decision_html(v)}<h3>What moved the score</h3>{steps}"
            f"<h2>The application</h2>{sections}<p class='note'>Exported by {html.escape(user)} from the credit decisions "
            "dashboard. The stored decision is the one above; simulations are not decisions.</p></body></html>")


class DecisionPanel:
    """The decision view of one session, built once and filled for each selected application: a
    click changes text and chart data, not the page's structure (building the two Bokeh figures
    cost most of a click, and the browser now redraws only what changed). Every part is filled
    under one hold, so the page never mixes two clients."""

    def __init__(self, export: Callable[[vm.ClientView], io.StringIO]):
        self.view: vm.ClientView | None = None
        self.bullet, self.waterfall = charts.Bullet(), charts.Waterfall()
        self.decision, self.band, self.steps, self.application, self.every_field = (_html("") for _ in range(5))
        self.download = pn.widgets.FileDownload(
            callback=lambda: export(self.view), button_type="primary", button_style="outline",
            label="Download this decision for the meeting (HTML, printable)", sizing_mode="stretch_width")
        self.layout = pn.Column(
            self.decision, pn.pane.Bokeh(self.bullet.figure, sizing_mode="stretch_width"), self.band,
            _html("<h3>What moved the score</h3>"), pn.pane.Bokeh(self.waterfall.figure, sizing_mode="stretch_width"),
            self.steps, self.application,
            pn.Card(self.every_field, title="Every field of the application, as submitted", collapsed=True, sizing_mode="stretch_width"),
            self.download, sizing_mode="stretch_width")

    def show(self, v: vm.ClientView) -> pn.Column:
        steps = "; ".join(f"{b.label} {b.points:+.0f}" for b in v.contributions[1:])
        with pn.io.hold():
            self.view = v
            self.decision.object = decision_html(v)
            self.bullet.show(v.probability, v.refer_low, v.refer_high)
            self.band.object = f"<p class='chart-text'>Chart in words: {html.escape(v.band_sentence)}</p>"
            self.waterfall.show(v.contributions)
            self.steps.object = (f"<p class='chart-text'>{html.escape(v.contributions_sentence)} In words: starting from "
                                 f"{v.contributions[0].points:.0f} points for a typical applicant, {html.escape(steps)}.</p>")
            self.application.object = "<h2>The application</h2>" + "".join(
                f"<h3>{html.escape(s)}</h3>{_facts(r)}" for s, r in v.application.items())
            self.every_field.object = _facts(v.every_field)
            self.download.filename = f"decision_{v.sk_id}.html"
        return self.layout


class Dashboard:
    """One user's session: filters, the list, the one selection and the section shown."""

    def __init__(self, store: SnapshotStore, user: str, role: str = auth.ADVISOR, journal: ReviewJournal | None = None,
                 session: Callable[[bool], bool] | None = None):
        self.store, self.user = store, user
        # whether the sign-in is still open (True: this was a use of it); None without a sign-in
        self.session = session
        self.root = pn.Column(sizing_mode="stretch_width")
        self.journal = journal or ReviewJournal()
        self.shown: int | None = None
        self.client: DecisionPanel | None = None
        self.night = pn.widgets.Select(stylesheets=INPUT_CSS, name="Night", options=[ALL, *store.days()], width=170)
        self.decision = pn.widgets.Select(stylesheets=INPUT_CSS, name="Decision", options=[ALL, *vm.DECISIONS], width=200)
        self.review_status = pn.widgets.Select(stylesheets=INPUT_CSS, name="Review", options=[ALL, *vm.QUEUE_FILTERS], width=230)
        self.search = pn.widgets.TextInput(stylesheets=INPUT_CSS, name="Application number starts with", placeholder="e.g. 1002", width=230)
        self.applications = pn.widgets.Select(stylesheets=INPUT_CSS, name="Applications (arrow keys to move)", size=14, options={},
                                              sizing_mode="stretch_width", min_width=300)
        self.count = _html("")
        self.banner = _html("")  # "refer everything", on every page while it is on
        self.role = role
        sections = [s for s in SECTIONS if role == auth.SUPERVISOR or s not in SUPERVISOR_ONLY]
        self.section = pn.widgets.RadioButtonGroup(name="View", options=sections, value=sections[0], button_type="primary",
                                                   button_style="outline")
        self.detail = pn.Column(sizing_mode="stretch_width", min_width=300)
        # what the last review action did: it stays said when the queue moves on to the next case
        self.confirmation = _html("", margin=(0, 10))
        # the button pressed is gone once the case is drawn anew: focus moves to what happened, not the top of the page
        self.confirmation.jscallback(text=FOCUS_WHAT_HAPPENED)
        # the queue changes under other people's hands: read it again on request (never on a timer,
        # which would wipe a form being filled in)
        self.reload = pn.widgets.Button(name="Refresh the list", button_type="default", button_style="outline", align="end")
        self.reload.on_click(self.refresh)
        for widget in (self.night, self.decision, self.review_status, self.search):
            widget.param.watch(self.refresh, "value")
        self.applications.param.watch(lambda _: self.render(), "value")
        self.section.param.watch(lambda _: self.render(force=True), "value")
        self.refresh()
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            # pushed to every open page within seconds of a supervisor's switch or of the sign-in's end, without a refresh
            self.following = pn.state.add_periodic_callback(self.follow, period=SWITCH_FOLLOW_MS)

    def follow(self) -> None:
        """What changes under an open page by others' hands: the sign-in ended (signed out in another tab,
        removed, idle too long): the page empties; the "refer everything" switch: the banner follows."""
        if self.session is not None and not self.session(False):
            self.following.stop()
            self.root.objects = [_html("<h1>You are signed out</h1><p>Your session ended (signed out, idle for too long, or "
                                       "your account changed). <a href='/login'>Sign in again</a>.</p>")]
            return
        self.follow_the_switch()

    # the one selection: the detail is always drawn from the list box's value
    def refresh(self, *_) -> None:
        night = None if self.night.value == ALL else self.night.value
        decision = None if self.decision.value == ALL else self.decision.value
        status = None if self.review_status.value == ALL else self.review_status.value
        listing = vm.listing(self.store, night, decision, self.search.value, status, self.journal)
        keep = vm.follow(listing.options, self.applications.value)
        self.count.object = f"<p class='note'>{html.escape(listing.message)}</p>"
        self.follow_the_switch()
        with pn.io.hold():
            self.applications.options = listing.options
            self.applications.value = keep
        # a case may have changed in another session since it was drawn: the decision that stands and the
        # review are drawn anew (the what-if and compare forms are left as typed)
        self.render(force=self.section.value in ("Decision", "Review"))

    def follow_the_switch(self) -> None:
        """The "refer everything" banner as the switch is now; only the banner changes (a form being filled stays)."""
        switch = refer_all.state()
        banner = (f"<p class='synthetic' role='status'><b>Every new decision goes to an advisor.</b> "
                  f"{html.escape(switch.sentence())}</p>" if switch.on else "")
        if self.banner.object != banner:
            self.banner.object = banner

    def render(self, force: bool = False) -> None:
        if self.session is not None and not self.session(True):  # each use keeps the sign-in from going idle
            self.follow()
            return
        sk_id = self.applications.value
        if sk_id == self.shown and not force and self.detail.objects:
            return
        self.shown = sk_id
        if self.section.value in SUPERVISOR_ONLY and self.role != auth.SUPERVISOR:
            # not shown to an advisor, and refused on the server if asked for all the same
            metrics.REFUSED_VIEWS.inc()
            auth.record(self.user, f"refused: {self.section.value.lower()} view", role=self.role)
            self.detail.objects = [_html("<h2>Not for your role</h2><p>The supervision view is for supervisors.</p>")]
            return
        if self.section.value == "Supervisor":
            self.detail.objects = [self.supervisor_view()]
            return
        if sk_id is None:
            self.detail.objects = [_html("<h2>No applications match</h2><p>Change the night, the decision or the search.</p>")]
            return
        auth.record(self.user, f"view {self.section.value.lower()}", int(sk_id))
        build = {"Decision": self.decision_view, "Compare": self.compare_view, "What if": self.what_if_view,
                 "Review": self.review_view}[self.section.value]
        self.detail.objects = [build(int(sk_id))]

    def decision_view(self, sk_id: int) -> pn.viewable.Viewable:
        if self.client is None:
            self.client = DecisionPanel(self._export)
        return self.client.show(vm.client_view(self.store, sk_id, self.journal))

    def _export(self, v: vm.ClientView) -> io.StringIO:
        auth.record(self.user, "export", v.sk_id)
        return io.StringIO(export_html(v, self.user))

    def compare_view(self, sk_id: int) -> pn.viewable.Viewable:
        features = vm.comparable_features(self.store)
        feature = pn.widgets.Select(stylesheets=INPUT_CSS, name="Compare on", options=features, value=next(iter(features.values())), width=420)
        same = pn.widgets.CheckBoxGroup(name="Similar clients have the same", options=list(vm.GROUPS), value=["type of income"],
                                        inline=True)
        out = pn.Column(sizing_mode="stretch_width")

        def draw(*_):
            c = vm.compare(self.store, sk_id, feature.value, same.value)
            auth.record(self.user, "compare", sk_id, feature=feature.value, same=same.value)
            shown = c.neighbours
            table = pd.DataFrame({
                "Similar past client": [f"#{int(r)}" for r in shown.get("rank", [])],
                "Outcome": shown.get("outcome", []),
                "Type of loan": shown.get("NAME_CONTRACT_TYPE", []),
                "Type of income": shown.get("NAME_INCOME_TYPE", []),
                "Income per year": [vm.money(x) for x in shown.get("AMT_INCOME_TOTAL", [])],
            })
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in r) + "</tr>" for r in table.itertuples(index=False))
            head = "".join(f"<th scope='col'>{html.escape(c)}</th>" for c in table.columns)
            out.objects = [
                pn.pane.Bokeh(charts.distribution(c.all_values, c.group_values, c.client_value, c.meaning, "similar clients"),
                              sizing_mode="stretch_width"),
                _html(f"<p class='chart-text'>Chart in words: {html.escape(c.sentence)} The blue bars are {html.escape(c.group_words)}; "
                      "the grey bars all past clients the model learned from.</p>"),
                _html(f"<h3>The past clients most like this one</h3><p>{html.escape(c.neighbours_sentence)} Similarity is measured on "
                      "the information the model weighs most.</p><table class='facts'><thead><tr>" + head + "</tr></thead><tbody>"
                      + rows + "</tbody></table>"),
            ]

        feature.param.watch(draw, "value")
        same.param.watch(draw, "value")
        draw()
        return pn.Column(_html(standing_html(vm.client_view(self.store, sk_id, self.journal),
                                             title=f"Application {sk_id} compared with past clients")), feature,
                         _html("<p>Similar clients have the same:</p>"), same, out, sizing_mode="stretch_width")

    def what_if_view(self, sk_id: int) -> pn.viewable.Viewable:
        app = self.store.applicant(sk_id).application
        credit, annuity = float(app["AMT_CREDIT"]), app["AMT_ANNUITY"]
        annuity = float(annuity) if pd.notna(annuity) else None
        goods = float(app["AMT_GOODS_PRICE"]) if pd.notna(app["AMT_GOODS_PRICE"]) else credit
        term = round(credit / annuity, 1) if annuity else None
        money = f"({vm.currency()})"
        amount_w = pn.widgets.FloatInput(stylesheets=INPUT_CSS, name=f"Amount of the loan {money}", value=credit, start=1, step=1000, width=240)
        annuity_w = pn.widgets.FloatInput(stylesheets=INPUT_CSS, name=f"Repayment each period {money}", value=annuity, start=1, step=100, width=240)
        goods_w = pn.widgets.FloatInput(stylesheets=INPUT_CSS, name=f"Price of the goods {money}", value=goods, start=0, step=1000, width=240)
        term_w = pn.widgets.FloatInput(stylesheets=INPUT_CSS, name="Number of repayments", value=term, start=1, step=1, width=200)
        run = pn.widgets.Button(name="Re-score with these amounts", button_type="primary")
        reset = pn.widgets.Button(name="Back to the application's amounts", button_type="default")
        result = pn.Column(sizing_mode="stretch_width")
        chart = charts.Bullet()
        picture = pn.pane.Bokeh(chart.figure, sizing_mode="stretch_width")
        computing = []  # set while one field is computed from the others, so it does not compute them back

        def computed(widget, value) -> None:
            computing.append(True)
            try:
                widget.value = value
            finally:
                computing.pop()

        # what the user typed stays as typed; the field that depends on it is computed:
        # amount or term typed -> the repayment; repayment typed -> the term
        def from_amount_or_term(*_):
            if not computing and amount_w.value and term_w.value:
                computed(annuity_w, round(amount_w.value / term_w.value, 2))

        def from_repayment(*_):
            if not computing and amount_w.value and annuity_w.value:
                computed(term_w, round(amount_w.value / annuity_w.value, 1))

        def back(*_):
            computing.append(True)
            try:
                amount_w.value, annuity_w.value, goods_w.value, term_w.value = credit, annuity, goods, term
            finally:
                computing.pop()
            result.objects = []

        def rescore(*_):
            try:
                w = vm.what_if(self.store, sk_id, amount_w.value, annuity_w.value, goods_w.value)
            except ValueError as exc:
                result.objects = [_html(f"<p role='alert'>{html.escape(str(exc))}</p>")]
                return
            auth.record(self.user, "simulation", sk_id, amount=amount_w.value, annuity=annuity_w.value, goods_price=goods_w.value,
                        simulated_pd=float(w.after["probability_of_default"]), simulated_decision=w.after["decision"])
            icon, words, colour = vm.DECISIONS[w.after["decision"]]
            chart.show(float(w.after["probability_of_default"]), float(w.before["refer_low"]), float(w.before["refer_high"]))
            reasons = "".join(f"<li>{html.escape(r)}</li>" for r in w.reasons) or "<li>Nothing stood out.</li>"
            result.objects = [
                _html(f"<h3>Simulated: <span class='decision' style='color:{colour}'>{icon} {words}</span></h3>"
                      f"<p>{html.escape(w.sentence)}</p><p class='note'>A simulation: the stored decision is unchanged.</p>"),
                picture,
                _html(f"<h3>What would weigh most</h3><ol>{reasons}</ol>"),
            ]

        amount_w.param.watch(from_amount_or_term, "value")
        term_w.param.watch(from_amount_or_term, "value")
        annuity_w.param.watch(from_repayment, "value")
        run.on_click(rescore)
        reset.on_click(back)
        return pn.Column(
            _html(standing_html(vm.client_view(self.store, sk_id, self.journal), title=f"What if application {sk_id} asked for something else?")
                  + "<p>Change the amounts and re-score: the same "
                  "features and model as the night compute the answer. Nothing is stored as a decision. Typing the amount or "
                  "the number of repayments computes the repayment; typing the repayment computes the number of repayments.</p>"),
            pn.FlexBox(amount_w, annuity_w, goods_w, term_w), pn.Row(run, reset), result, sizing_mode="stretch_width")

    def review_view(self, sk_id: int) -> pn.viewable.Viewable:
        """The case of the selected application, what was done on it, and what this role may do now."""
        case = vm.case_of(self.store, self.journal, sk_id)
        view = vm.client_view(self.store, sk_id, self.journal)
        words = review.WORDS
        history = "".join(f"<li>{html.escape(line)}</li>" for line in vm.case_history(self.journal, sk_id)) or "<li>Nothing yet.</li>"
        waiting = vm.waiting_sentence(self.store, self.journal, sk_id)
        said = _html("")

        def act(action: str, **fields) -> None:
            try:
                after = vm.record_review(self.store, self.journal, sk_id, action, user=self.user, role=self.role,
                                         revision=case.revision, **fields)
            except review.ReviewError as refused:
                metrics.ACTIONS.labels(action, "refused").inc()
                auth.record(self.user, f"review refused: {action}", sk_id, reason=str(refused))
                alert = f"<p role='alert'><b>Not recorded</b>: {html.escape(str(refused))}</p>"
                if vm.case_of(self.store, self.journal, sk_id).revision != case.revision:
                    # someone acted first: show the case as it is now, with what they did
                    self.confirmation.object = alert
                    self.render(force=True)
                else:  # the form keeps what was typed, to be corrected
                    said.object, self.confirmation.object = alert, ""
                return
            metrics.ACTIONS.labels(action, "recorded").inc()
            auth.record(self.user, f"review {action}", sk_id, **{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()
                                                                 if k != "note"})
            with pn.io.hold():  # the confirmation, the list and the view reach the page together
                self.confirmation.object = (f"<p role='status'><b>Recorded on application {sk_id}</b>. "
                                            f"{html.escape(vm.action_outcome(sk_id, action, after))}</p>")
                # the list follows (a decided case leaves the open queue), and the view (refresh draws a review anew)
                self.refresh()

        form: list = []
        if case.status == review.OPEN:
            # nothing preselected: on a contested case the model's opposite would be an override by default
            final = pn.widgets.RadioButtonGroup(name="Final decision", options={"Grant": review.GRANTED, "Refuse": review.REFUSED},
                                                button_type="primary", button_style="outline")
            final.value = None
            codes = pn.widgets.CheckBoxGroup(name="Reasons", options={})
            codes_heading = _html("<p>Reasons: choose Grant or Refuse first; each has its own.</p>")

            def reasons_for(*_):  # the reasons valid for the direction chosen, internal ones marked
                codes.value = []
                codes.options = {text + (" (internal: never told to the client)" if review.REASONS[code].client is None else ""): code
                                 for code, text in review.codes_for(final.value).items()} if final.value else {}
                codes_heading.object = f"<p>Reasons to have it {words[final.value]}:</p>" if final.value else codes_heading.object

            final.param.watch(reasons_for, "value")
            note = pn.widgets.TextAreaInput(stylesheets=INPUT_CSS, name="Note (kept with the decision)", max_length=review.MAX_NOTE,
                                            sizing_mode="stretch_width")
            record = pn.widgets.Button(name="Record the decision", button_type="primary")
            record.on_click(lambda _: act(review.DECIDE, final=final.value, reason_codes=tuple(codes.value), note=note.value))
            reverses = (f" The model {words[case.model_decision]} it: deciding otherwise is an override, sent to a supervisor "
                        "for approval." if case.model_decision != review.REFER else "")
            form = [_html(f"<h3>Decide</h3><p>Choose the final decision and its reasons.{reverses}</p>"),
                    final, codes_heading, codes, note, record]
        elif case.status == review.WAITING and self.role == auth.SUPERVISOR and self.user != case.requested_by:
            comment = pn.widgets.TextAreaInput(stylesheets=INPUT_CSS, name="Comment", max_length=review.MAX_NOTE, sizing_mode="stretch_width")
            approve = pn.widgets.Button(name="Approve the override", button_type="primary")
            back = pn.widgets.Button(name="Send it back", button_type="default")
            approve.on_click(lambda _: act(review.APPROVE, note=comment.value))
            back.on_click(lambda _: act(review.SEND_BACK, note=comment.value))
            form = [_html(f"<h3>Approve</h3><p>{html.escape(str(case.requested_by))} asks to have it "
                          f"{words.get(case.requested_final, '')}.</p>"), comment, pn.Row(approve, back)]
        elif case.status == review.WAITING:
            form = [_html(f"<p>Waiting for a supervisor other than {html.escape(str(case.requested_by))} to approve.</p>")]
        else:
            channel = pn.widgets.Select(stylesheets=INPUT_CSS, name="The client asked by", options=list(review.CHANNELS))
            today = datetime.now(UTC).date()
            asked_on = pn.widgets.DatePicker(stylesheets=INPUT_CSS, name="On", value=today, end=today, width=200)
            words_in = pn.widgets.TextAreaInput(stylesheets=INPUT_CSS, name="The client's own words", max_length=review.MAX_NOTE,
                                                sizing_mode="stretch_width")
            contest = pn.widgets.Button(name="Record the client's request for a human review", button_type="primary")
            contest.on_click(lambda _: act(review.CONTEST, note=words_in.value, channel=channel.value,
                                           received_on=str(asked_on.value) if asked_on.value else None))
            form = [_html("<h3>A client contests</h3><p>Recording it puts the application back in the review queue, marked "
                          "contested; it waits from the day the client asked.</p>"),
                    pn.Row(channel, asked_on), words_in, contest]
        letter_html = pn.widgets.FileDownload(callback=lambda: self._letter(sk_id, pdf=False), filename=f"letter_{sk_id}.html",
                                              label="The letter to the client (HTML)", button_type="default", button_style="outline")
        letter_pdf = pn.widgets.FileDownload(callback=lambda: self._letter(sk_id, pdf=True), filename=f"letter_{sk_id}.pdf",
                                             label="The letter to the client (PDF)", button_type="default", button_style="outline")
        return pn.Column(
            _html(standing_html(view, title=f"Review of application {sk_id}")
                  + f"<p>The model: <b>{words.get(case.model_decision, case.model_decision)}</b>. "
                  f"The case: <b>{html.escape(case.status)}</b>, {words.get(case.final_decision, case.final_decision)} "
                  f"(decided by {html.escape(case.decided_by)}).</p>"
                  + (f"<p>{html.escape(waiting)}</p>" if waiting else "") + f"<h3>What was done</h3><ul>{history}</ul>"),
            said, *form, _html(self._assessment(view)),
            _html("<h3>Letters</h3><p>The letter due now: the decision, its reasons in the client's words, what would change it, "
                  "and how to ask for a person; after a review the client asked for, its outcome.</p>"),
            pn.Row(letter_html, letter_pdf), sizing_mode="stretch_width")

    @staticmethod
    def _assessment(v: vm.ClientView) -> str:
        """The model's reasons and what would change its decision, beside the form (the decision,
        compare and what-if views have the rest)."""
        reasons, change = _reasons_and_change(v)
        return (f"<h3>The model's assessment</h3><p>Probability of default <b>{v.probability_text}</b> · grade <b>{v.grade}</b>. "
                f"{html.escape(v.band_sentence)}</p><p>{html.escape(v.reasons_heading)}:</p><ol>{reasons}</ol>"
                f"<p><b>What would change the decision</b>: {html.escape(change)}</p>")

    def _letter(self, sk_id: int, pdf: bool) -> io.BytesIO | io.StringIO:
        letter = vm.client_letter(self.store, self.journal, sk_id)
        auth.record(self.user, "letter", sk_id, kind=letter.kind, format="pdf" if pdf else "html")
        try:
            return io.BytesIO(letters.to_pdf(letter)) if pdf else io.StringIO(letters.to_html(letter))
        except letters.LetterError as unsigned:  # said on the page, and no letter leaves
            self.confirmation.object = f"<p role='alert'><b>No letter</b>: {html.escape(str(unsigned))}</p>"
            return None

    def supervisor_view(self) -> pn.viewable.Viewable:
        s = vm.supervision(self.store)
        summary = self.store.model_summary()
        psi = vm.psi_table(s.psi, self.store.meanings())
        report = f"<a href='/reports/drift/drift_{s.drift_night}.html'>Evidently drift report of {s.drift_night}</a>" if s.drift_night else ""
        flags = ("".join(f"<li>{html.escape(f)}</li>" for f in s.fairness_flags)
                 or "<li>No group is treated unequally (equal opportunity, calibration within the group).</li>")
        history = vm.history_table(s.history)
        work = vm.workload(self.store, self.journal)
        auth.record(self.user, "view supervisor")
        return pn.Column(
            _html("<h2>Supervision</h2>"), self.switch_control(), self.locked_accounts(),
            _html(f"<h3>The review queue now</h3><p>As of {html.escape(work.as_of)}, from the review journal: "
                  f"{html.escape(work.sentence)}. Overrides standing now (approved by a supervisor): {work.overrides:,}.</p>"
                  + (_scrolling(work.per_reviewer, "Each reviewer's work") if len(work.per_reviewer) else "<p>No reviewer has acted yet.</p>")),
            pn.pane.Bokeh(charts.volumes(s.volumes), sizing_mode="stretch_width"),
            _html("<p class='chart-text'>Chart in words: " + "; ".join(
                f"{night}: " + ", ".join(f"{int(n):,} {vm.DECISIONS[d][1].lower()}" for d, n in row.items())
                for night, row in s.volumes.iterrows()) + ".</p>"),
            pn.pane.Bokeh(charts.score_histogram(s.probabilities, float(summary["refer_low"]), float(summary["refer_high"])),
                          sizing_mode="stretch_width"),
            _html(f"<p class='chart-text'>Chart in words: {len(s.probabilities):,} applications scored, median probability of default "
                  f"{pd.Series(s.probabilities).median():.1%}.</p>"),
            _html(f"<h3>Drift of the latest night</h3><p>{report}</p>" + _scrolling(psi, "Drift of the latest night")),
            _html("<h3>Fairness of the champion</h3><p><a href='/reports/model_card.html'>Model card</a> · "
                  "<a href='/reports/technical_documentation.html'>Technical documentation</a> (EU AI Act Annex IV, "
                  "<a href='/reports/technical_documentation.pdf'>PDF</a>)</p><ul>" + flags + "</ul>"
                  + _scrolling(vm.fairness_table(s.fairness), "Fairness of the champion")),
            _html("<h3>Model history</h3>" + _scrolling(history, "Model history")),
            *self._backtesting(),
            sizing_mode="stretch_width")

    def _backtesting(self) -> list[pn.viewable.Viewable]:
        """What repayment outcomes say of the decisions (the back-test's snapshot), or that none came yet."""
        b = vm.backtesting(self.store)
        if b is None:
            return [_html("<h3>Back-testing on repayment outcomes</h3><p>No outcome yet: once outcome files are delivered, "
                          "<code>credit-dagster backtest</code> (or the daily job) compares each decision with what the client did.</p>")]
        return [
            _html(f"<h3>Back-testing on repayment outcomes</h3><p>{html.escape(b.sentence)}</p>"),
            pn.pane.Bokeh(charts.calibration(b.grades), sizing_mode="stretch_width"),
            _html(f"<p class='chart-text'>Chart in words: {html.escape(b.grades_sentence)}</p>"),
            pn.pane.Bokeh(charts.vintage_curves(b.curves), sizing_mode="stretch_width"),
            _html(f"<p class='chart-text'>Chart in words: {html.escape(b.curves_sentence)}</p>"),
            _html(f"<h3>Does the model still rank as in development?</h3><p>{html.escape(b.auc_sentence)}</p>"),
            *([pn.pane.Bokeh(charts.auc_over_time(b.auc_over_time), sizing_mode="stretch_width"),
               _html("<p class='chart-text'>Chart in words: " + html.escape("; ".join(
                   f"{r.model_version}, {r.vintage}: {r.realized_auc:.3f} ({r.realized_auc_low:.3f} to {r.realized_auc_high:.3f}) "
                   f"against {r.development_granted_auc:.3f} in development" for r in b.auc_over_time.itertuples())) + ".</p>")]
              if len(b.auc_over_time) else []),
            _html("<h3>Each model version, each month of decisions</h3>" + _scrolling(b.vintages, "Back-test per model version and vintage")),
            _html(f"<h3>Overrides and how they repaid</h3><p>As back-tested on {html.escape(b.as_of)} (the overrides standing now "
                  "are counted live under “The review queue now” above): decisions taken by people, how often they reversed the model, "
                  "and how the applications a person granted against the model repaid beside those the model granted itself.</p>"
                  + (_scrolling(b.overrides, "Overrides and how they repaid") if len(b.overrides) else "<p>No decision taken by a person yet.</p>")),
        ]

    def locked_accounts(self) -> pn.viewable.Viewable:
        """Accounts locked after failed sign-ins, each with its unlock button (a supervisor's, checked on the server)."""
        locked = auth.locked()
        said = _html("")

        def unlock(name: str) -> None:
            if self.role != auth.SUPERVISOR:
                said.object = "<p role='alert'>Only a supervisor may unlock an account.</p>"
                auth.record(self.user, "refused: unlock an account", user_unlocked=name)
                return
            auth.unlock(name)
            auth.record(self.user, "account unlocked", user_unlocked=name)
            self.render(force=True)

        buttons = []
        for name in sorted(locked):
            button = pn.widgets.Button(name=f"Unlock {name}", button_type="default", button_style="outline")
            button.on_click(lambda _, name=name: unlock(name))
            buttons.append(button)
        since = "".join(f"<li>{html.escape(name)}, locked at {html.escape(at)}</li>" for name, at in sorted(locked.items()))
        heading = (f"<h3>Locked accounts</h3><p>Locked after repeated failed sign-ins: unlock one once you know its owner was the "
                   f"one who tried.</p><ul>{since}</ul>") if locked else "<h3>Locked accounts</h3><p>No account is locked.</p>"
        return pn.Column(_html(heading), *buttons, said, sizing_mode="stretch_width")

    def switch_control(self) -> pn.viewable.Viewable:
        """Refer everything: on, every new decision (nightly or on demand) goes to an advisor until off."""
        switch = refer_all.state()
        why = pn.widgets.TextInput(stylesheets=INPUT_CSS, name="Why (kept in the journal)", max_length=refer_all.MAX_WHY,
                                   sizing_mode="stretch_width")
        flip = pn.widgets.Button(name="Switch refer everything " + ("off" if switch.on else "on"), button_type="primary")
        said = _html("")

        def toggle(_):
            try:  # the role is checked here, on the server, whatever the page showed
                refer_all.set_switch(not switch.on, by=self.user, role=self.role, why=why.value)
            except (PermissionError, ValueError) as refused:
                said.object = f"<p role='alert'>{html.escape(str(refused))}</p>"
                auth.record(self.user, "refused: refer everything", reason=str(refused))
                return
            auth.record(self.user, "refer everything " + ("off" if switch.on else "on"), why=why.value)
            self.refresh()
            self.render(force=True)

        flip.on_click(toggle)
        return pn.Column(_html(f"<h3>Refer everything</h3><p>{html.escape(switch.sentence())} It takes effect on the next API "
                               "request and the next night.</p>"), why, flip, said, sizing_mode="stretch_width")

    def page(self) -> pn.viewable.Viewable:
        summary = self.store.model_summary()
        synthetic = ("<p class='synthetic'><b>SYNTHETIC DATA: no applicant here is a real person.</b></p>"
                     if summary["synthetic"] else "")
        signed = (f"Signed in as <b>{html.escape(self.user)}</b> ({html.escape(self.role)}) · <a href='/logout'>Sign out</a>"
                  if self.user != auth.NO_LOGIN
                  else "<b>No sign-in: local use only</b>")
        header = _html(
            f"<header><h1>Credit decisions</h1>{synthetic}<p>{signed} · model <a href='/reports/model_card.html'>"
            f"{html.escape(str(summary['model_version']))}</a> (cross-validated AUC {summary['cv_roc_auc']:.3f}) · "
            f"snapshot of the night of {summary['published_for']}</p></header>")
        filters = pn.FlexBox(self.night, self.decision, self.review_status, self.search, self.reload)
        # side by side on a wide screen; the list above the detail when narrow (640 px, or 200 % zoom)
        side = pn.Column(filters, self.count, self.applications, styles={"flex": "1 1 440px", "max-width": "600px"})
        main = pn.Column(self.section, self.confirmation, self.detail, styles={"flex": "3 1 560px", "min-width": "0"})
        self.root.objects = [header, self.banner, pn.FlexBox(side, main, flex_wrap="wrap", gap="1.5rem", sizing_mode="stretch_width")]
        return self.root


def dashboard(store: SnapshotStore, user: str, role: str = auth.ADVISOR,
              session: Callable[[bool], bool] | None = None) -> pn.viewable.Viewable:
    if not store.available():
        return _html(f"<h1>Credit decisions</h1><p>No serving snapshot at {html.escape(str(store.path))} yet: run "
                     "<code>credit-dagster run</code> first.</p>")
    try:
        store.model_summary()
    except formats.FormatError as newer:  # published by a newer release than this dashboard's: nothing of it is shown
        return _html(f"<h1>Credit decisions</h1><p>{html.escape(str(newer))}.</p>")
    return Dashboard(store, user, role, session=session).page()
