"""Bokeh pictures of the view models: interactive (hover, zoom), served by the Panel server
itself (no CDN). Colour is never the only carrier: every bar and band is also labelled in text,
and each chart has a sentence beside it (`describe`) for people who cannot see it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from bokeh.models import ColumnDataSource, HoverTool, Label, LabelSet, NumeralTickFormatter, Span
from bokeh.plotting import figure

from panel_app.view_model import DECISIONS, Bar, percents

GOOD, MIDDLE, BAD, INK = "#1b5e20", "#7a3e00", "#b71c1c", "#212121"
LIGHT = {"granted": "#c8e6c9", "refer": "#ffe0b2", "refused": "#ffcdd2"}
FONT = "16px"


def _style(fig) -> None:
    fig.toolbar.logo = None
    fig.title.text_font_size = FONT
    for axis in (*fig.xaxis, *fig.yaxis):
        axis.major_label_text_font_size = "14px"
        axis.axis_label_text_font_size = "14px"
        axis.major_label_text_color = INK


class Bullet:
    """The probability of default on a bar with the three decision bands marked. Built once per
    view and then `show`n for each client: a new client changes the data, not the figure (a
    Bokeh figure costs tens of milliseconds to build, and the browser redraws only what changed)."""

    WORDS = ("granted below this band", "an advisor decides in this band", "refused from here")
    SHORT = ("granted", "advisor", "refused")

    def __init__(self) -> None:
        self.figure = figure(height=150, sizing_mode="stretch_width", x_range=(0, 1), y_range=(0, 1), tools="hover",
                             tooltips="@words", title="Probability of default against the decision bands")
        self.bands = ColumnDataSource({"left": [], "right": [], "colour": [], "words": []})
        self.names = ColumnDataSource({"middle": [], "short": []})
        self.client = ColumnDataSource({"right": [0.0]})
        self.figure.quad(left="left", right="right", bottom=0, top=1, color="colour", source=self.bands)
        self.figure.add_layout(LabelSet(x="middle", y=0.72, text="short", text_align="center", text_font_size="14px",
                                        text_color=INK, source=self.names))
        self.figure.quad(left=0, right="right", bottom=0.3, top=0.6, color=INK, source=self.client)
        self.label = Label(x=0, y=0.05, text="", text_font_size="14px", text_color=INK)
        self.figure.add_layout(self.label)
        self.figure.yaxis.visible = False
        self.figure.xaxis.formatter = NumeralTickFormatter(format="0%")
        _style(self.figure)

    def show(self, probability: float, low: float, high: float) -> Bullet:
        end = max(0.3, probability * 1.15, high * 2)
        lefts, rights = [0, low, high], [low, high, end]
        self.bands.data = {"left": lefts, "right": rights, "colour": list(LIGHT.values()), "words": list(self.WORDS)}
        # a band too narrow to hold its name is named by the sentence beside the chart and the tooltip
        wide = [i for i in range(3) if (rights[i] - lefts[i]) / end > 0.12]
        self.names.data = {"middle": [(lefts[i] + rights[i]) / 2 for i in wide], "short": [self.SHORT[i] for i in wide]}
        self.client.data = {"right": [probability]}
        self.label.update(x=probability, text=f"this client {percents(probability, low, high)[0]}",
                          text_align="left" if probability < end / 2 else "right")
        self.figure.x_range.end = end
        return self


class Waterfall:
    """How each piece of information moved the score (points), from a typical applicant. Each
    bar's words sit above it (no axis labels), so the chart keeps its width on a narrow screen.
    Built once per view, `show`n for each client like `Bullet`."""

    def __init__(self) -> None:
        self.source = ColumnDataSource({k: [] for k in ("y", "label", "left", "right", "text", "colour", "words", "x0")})
        self.figure = figure(y_range=(-0.6, 1), x_range=(0, 1), height=100, sizing_mode="stretch_width",
                             title="What moved this client's score (points)", tools="hover,xpan,xwheel_zoom,reset",
                             x_axis_label="points")
        self.figure.hbar(y="y", left="left", right="right", height=0.35, color="colour", source=self.source)
        self.figure.add_layout(LabelSet(x="x0", y="y", text="label", x_offset=2, y_offset=9, source=self.source,
                                        text_font_size="14px", text_color=INK))
        self.figure.select_one(HoverTool).tooltips = [("", "@label"), ("effect", "@text points (@words)")]
        self.figure.yaxis.visible = False
        self.figure.ygrid.visible = False
        _style(self.figure)

    def show(self, bars: list[Bar]) -> Waterfall:
        start, steps = bars[0], bars[1:]
        labels = [start.label, *[b.label for b in steps], "This application (before calibration)"]
        level, lefts, rights, texts, colours, words = start.points, [0.0], [start.points], [f"{start.points:.0f}"], ["#9e9e9e"], ["start"]
        for b in steps:
            lefts.append(level)
            level += b.points
            rights.append(level)
            texts.append(f"{b.points:+.0f}")
            colours.append(GOOD if b.points >= 0 else BAD)
            words.append("lowered the risk" if b.points >= 0 else "raised the risk")
        lefts.append(0.0)
        rights.append(level)
        texts.append(f"{level:.0f}")
        colours.append("#455a64")
        words.append("end")
        moved = lefts[1:-1] + rights[1:-1]
        low = min(min(moved, default=level), level) - 30
        high = max(max(moved, default=level), level, start.points) + 20
        self.source.data = {"y": list(range(len(labels)))[::-1],
                            "label": [f"{lab}  ({t})" for lab, t in zip(labels, texts, strict=True)],
                            "left": np.maximum(np.minimum(lefts, rights), low), "right": np.maximum(lefts, rights),
                            "text": texts, "colour": colours, "words": words, "x0": [low] * len(labels)}
        self.figure.x_range.update(start=low, end=high)
        self.figure.y_range.end = len(labels) - 0.2
        self.figure.height = 50 + 46 * len(labels)
        return self


def distribution(all_values: np.ndarray, group_values: np.ndarray, client: float | None, title: str, group_label: str) -> figure:
    """Histograms (as shares) of all past clients and of the chosen group, the client marked."""
    pooled = all_values if len(all_values) else np.array([0.0, 1.0])
    lo, hi = np.nanquantile(pooled, [0.01, 0.99])
    if client is not None:
        lo, hi = min(lo, client), max(hi, client)
    edges = np.linspace(lo, hi if hi > lo else lo + 1, 31)
    fig = figure(height=320, sizing_mode="stretch_width", title=title, tools="hover,xpan,xwheel_zoom,box_zoom,reset",
                 y_axis_label="share of clients")
    for values, colour, name in ((all_values, "#90a4ae", "all past clients"), (group_values, "#1565c0", group_label)):
        if not len(values):
            continue
        counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), edges)
        source = ColumnDataSource({"left": edges[:-1], "right": edges[1:], "share": counts / counts.sum(),
                                   "who": [name] * len(counts)})
        fig.quad(left="left", right="right", bottom=0, top="share", source=source, color=colour, alpha=0.55, legend_label=name)
    if client is not None:
        fig.add_layout(Span(location=client, dimension="height", line_color=INK, line_width=3, line_dash="dashed"))
        fig.add_layout(Label(x=client, y=5, y_units="screen", text=" this client", text_font_size="14px", text_color=INK))
    fig.select_one(HoverTool).tooltips = [("who", "@who"), ("from", "@left{0,0.[000]}"), ("to", "@right{0,0.[000]}"),
                                          ("share", "@share{0.0%}")]
    fig.legend.location = "top_right"
    fig.legend.label_text_font_size = "14px"
    _style(fig)
    return fig


def volumes(table: pd.DataFrame) -> figure:
    """Applications per night, stacked by decision."""
    nights = [str(n) for n in table.index]
    data = {"night": nights, **{d: table[d].tolist() for d in DECISIONS}}
    fig = figure(x_range=nights, height=300, sizing_mode="stretch_width", title="Applications per night, by decision",
                 tools="hover", tooltips="$name: @$name on @night")
    fig.vbar_stack(list(DECISIONS), x="night", width=0.7, color=[GOOD, MIDDLE, BAD], source=ColumnDataSource(data),
                   legend_label=[DECISIONS[d][1] for d in DECISIONS])
    # below the chart, never over the last night's bar
    legend = fig.legend[0]
    legend.update(orientation="horizontal", label_text_font_size="14px", location="center")
    fig.add_layout(legend, "below")
    _style(fig)
    return fig


def score_histogram(probabilities: np.ndarray, low: float, high: float) -> figure:
    counts, edges = np.histogram(probabilities, bins=np.linspace(0, max(0.5, float(np.max(probabilities, initial=0))), 41))
    fig = figure(height=300, sizing_mode="stretch_width", title="Probabilities of default of all scored applications",
                 tools="hover,box_zoom,reset", tooltips=[("from", "@left{0.0%}"), ("to", "@right{0.0%}"), ("applications", "@top")],
                 x_axis_label="probability of default", y_axis_label="applications")
    fig.quad(left=edges[:-1], right=edges[1:], bottom=0, top=counts, color="#546e7a")
    # the two bands are close: one label left of its line, the other right of its own, at two heights
    for x, words, align, y in ((low, "advisor from here ", "right", 34), (high, " refused from here", "left", 10)):
        fig.add_layout(Span(location=x, dimension="height", line_color=INK, line_dash="dashed", line_width=2))
        fig.add_layout(Label(x=x, y=y, y_units="screen", text=words, text_align=align, text_font_size="14px", text_color=INK,
                             background_fill_color="white", background_fill_alpha=0.8))
    fig.xaxis.formatter = NumeralTickFormatter(format="0%")
    _style(fig)
    return fig


def calibration(grades: pd.DataFrame) -> figure:
    """Per grade, the default rate observed (with its 95 % interval) against the one predicted."""
    names = grades["grade"].astype(str).tolist()
    fig = figure(x_range=names, height=300, sizing_mode="stretch_width", title="Defaults per grade: observed against predicted",
                 tools="hover", tooltips=[("grade", "@grade"), ("observed", "@observed{0.0%}"), ("predicted", "@predicted{0.0%}")],
                 x_axis_label="grade", y_axis_label="default rate")
    source = ColumnDataSource({"grade": names, "observed": grades["observed_rate"], "predicted": grades["predicted_rate"],
                               "low": grades["observed_low"], "high": grades["observed_high"]})
    fig.segment(x0="grade", x1="grade", y0="low", y1="high", line_width=3, color="#546e7a", source=source, legend_label="observed, 95 % interval")
    fig.scatter(x="grade", y="observed", size=11, color=INK, source=source, legend_label="observed")
    fig.scatter(x="grade", y="predicted", size=13, marker="diamond", color=BAD, source=source, legend_label="predicted")
    fig.yaxis.formatter = NumeralTickFormatter(format="0%")
    legend = fig.legend[0]
    legend.update(orientation="horizontal", label_text_font_size="14px", location="center")
    fig.add_layout(legend, "below")
    _style(fig)
    return fig


def vintage_curves(curves: pd.DataFrame) -> figure:
    """Cumulative default rate by months on book, one line per grade (labelled at its end)."""
    fig = figure(height=300, sizing_mode="stretch_width", title="Payment difficulties by months on book, per grade",
                 x_axis_label="months on book", y_axis_label="defaulted so far", tools="hover",
                 tooltips=[("grade", "@grade"), ("month", "@months_on_book"), ("defaulted", "@cumulative_default_rate{0.0%}")])
    # told apart without colour: each grade its own line pattern and marker, and its letter at the end
    patterns = ["solid", "dashed", "dotted", "dotdash", "dashdot"]
    markers = ["circle", "square", "triangle", "diamond", "inverted_triangle"]
    for i, (grade, rows) in enumerate(curves.groupby("grade")):
        source = ColumnDataSource(rows)
        fig.line(x="months_on_book", y="cumulative_default_rate", line_width=2, color=INK, line_dash=patterns[i % 5], source=source)
        fig.scatter(x="months_on_book", y="cumulative_default_rate", size=9, color=INK, marker=markers[i % 5], source=source)
        last = rows.iloc[-1]
        fig.add_layout(Label(x=float(last["months_on_book"]), y=float(last["cumulative_default_rate"]), text=f" {grade}",
                             text_font_size="14px", text_color=INK))
    fig.yaxis.formatter = NumeralTickFormatter(format="0%")
    _style(fig)
    return fig


def auc_over_time(rows: pd.DataFrame) -> figure:
    """Realized ROC AUC per vintage with its 95 % interval, one line per model version, and the
    development AUC among the applicants the policy grants (dashed), to compare with."""
    vintages = sorted(rows["vintage"].unique())
    fig = figure(x_range=vintages, height=300, sizing_mode="stretch_width", title="Realized ROC AUC per month of decisions",
                 x_axis_label="vintage (month of the decision)", y_axis_label="ROC AUC", tools="hover",
                 tooltips=[("model", "@model_version"), ("vintage", "@vintage"), ("realized", "@realized_auc{0.000}"),
                           ("95 % interval", "@realized_auc_low{0.000} to @realized_auc_high{0.000}")])
    for version, cell in rows.groupby("model_version"):
        source = ColumnDataSource(cell)
        fig.segment(x0="vintage", x1="vintage", y0="realized_auc_low", y1="realized_auc_high", line_width=3, color="#546e7a", source=source)
        fig.line(x="vintage", y="realized_auc", line_width=2, color=INK, source=source)
        fig.scatter(x="vintage", y="realized_auc", size=9, color=INK, source=source)
        fig.add_layout(Span(location=float(cell["development_granted_auc"].iloc[0]), dimension="width", line_dash="dashed",
                            line_color=BAD, line_width=2))
        fig.add_layout(Label(x=0, y=float(cell["development_granted_auc"].iloc[0]), x_units="screen", text=f" development, {version}",
                             text_font_size="14px", text_color=BAD, background_fill_color="white", background_fill_alpha=0.8))
    _style(fig)
    return fig
