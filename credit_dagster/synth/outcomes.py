"""SYNTHETIC repayment outcomes of scored applications, from the same hidden label the generator
drew for them (`Population.target`): the back-test on them is known in advance.

A client who will default does so in a month drawn between 1 and 12 on book; a report at
`months` on book says TARGET 1 from that month on, with worst days past due of 90 or more; the
others keep a small worst days past due. Reports are dated `months` after the night that decided.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from credit_dagster.synth.generator import build_population

FIRST_ID = 100_002  # the generator numbers applicants from here


def generated_with(data_dir: Path) -> tuple[float, int]:
    """The scale and seed a SYNTHETIC data set was generated with (its SYNTHETIC.txt)."""
    note = Path(data_dir) / "SYNTHETIC.txt"
    if not note.exists():
        raise ValueError(f"{data_dir} is not a SYNTHETIC data set (no SYNTHETIC.txt): its outcomes are not known here")
    fields = dict(re.findall(r"(scale|seed)=(\S+)", note.read_text()))
    return float(fields["scale"]), int(fields["seed"])


def outcomes(data_dir: Path, granted: pd.DataFrame, months: int) -> pd.DataFrame:
    """One report per granted application (`SK_ID_CURR`, `partition_date`), `months` on book."""
    scale, seed = generated_with(data_dir)
    pop = build_population(scale, seed)
    index = granted["SK_ID_CURR"].to_numpy(np.int64) - FIRST_ID
    if len(index) and (index.min() < 0 or index.max() >= len(pop.sk_id_curr)):
        raise ValueError("applicants outside the SYNTHETIC population: were they scored from this data set?")
    rng = np.random.default_rng([seed, 8])  # per applicant, the same whatever is asked
    default_month = rng.integers(1, 13, len(pop.sk_id_curr))[index]
    usual_dpd = rng.choice([0, 0, 0, 0, 3, 7, 15, 30], len(pop.sk_id_curr))[index]
    late_dpd = 90 + rng.integers(0, 120, len(pop.sk_id_curr))[index]
    defaulted = (pop.target[index] == 1) & (default_month <= months)
    nights = pd.to_datetime(granted["partition_date"].astype(str).str[:10])
    return pd.DataFrame({
        "SK_ID_CURR": granted["SK_ID_CURR"].to_numpy(np.int64),
        "REPORTING_DATE": (nights + pd.DateOffset(months=months)).dt.strftime("%Y-%m-%d").to_numpy(),
        "MONTHS_ON_BOOK": months, "WORST_DPD": np.where(defaulted, late_dpd, usual_dpd), "TARGET": defaulted.astype(int),
    })
