"""Small PNG charts for Dagster metadata and the model card (matplotlib, no display needed)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # headless: no display on a scheduler
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def cost_curve_png(thresholds: np.ndarray, cost: np.ndarray, chosen: float, refer: tuple[float, float], title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(thresholds, cost, color="#1f77b4")
    ax.axvline(chosen, color="#d62728", linestyle="--", label=f"threshold {chosen:.3f}")
    ax.axvspan(*refer, color="#ff7f0e", alpha=0.2, label="refer to an advisor")
    ax.set_xlabel("refuse when probability of default >= threshold")
    ax.set_ylabel("expected cost per applicant")
    ax.set_title(title, fontsize=10)
    ax.legend()
    return png(fig)


def reliability_png(rows: list[dict], title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    predicted = [r["predicted_pd"] for r in rows]
    observed = [r["observed_default_rate"] for r in rows]
    top = max(max(predicted), max(observed)) * 1.1
    ax.plot([0, top], [0, top], color="grey", linestyle=":")
    ax.plot(predicted, observed, marker="o")
    ax.set_xlabel("predicted probability of default")
    ax.set_ylabel("observed default rate")
    ax.set_title(title, fontsize=10)
    return png(fig)


def intervals_png(labels: list[str], observed: list[float], low: list[float], high: list[float], expected: list[float],
                  expected_label: str, ylabel: str, title: str) -> bytes:
    """Observed values with their 95 % intervals beside what was expected, per label (a grade, a vintage)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(labels))
    # clipped: with no default at all, the Jeffreys interval starts just above the observed 0
    errors = [np.clip(np.subtract(observed, low), 0, None), np.clip(np.subtract(high, observed), 0, None)]
    ax.errorbar(x, observed, yerr=errors, fmt="o", color="#212121",
                capsize=4, label="observed, 95 % interval")
    ax.scatter(x, expected, marker="D", color="#b71c1c", zorder=3, label=expected_label)
    ax.set_xticks(x, labels)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return png(fig)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()
