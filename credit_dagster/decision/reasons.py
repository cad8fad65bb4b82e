"""A decision explained in a client's words, from the model's own TreeSHAP contributions.

Features that tell a client one thing (the mean, lowest and highest of the external scores; the
time in a job and its share of life) form one group in the SQL headers: a group's contributions
are added up, so it is one reason and one bar. A missing history is no fault of the client's: when
an applicant has no history of a kind, everything the model read of that kind is one stated fact
("No repayment history with us yet"), never a reason. A reason is given only for a group that
raised the risk, worded by its strongest member whose value can honestly be said to weigh against
the application (`wording.reason_sentence`); up to four, whenever four such groups exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from credit_dagster.core import wording

N_REASONS = 4
TOP_BARS = 8  # groups kept per applicant for the dashboard's contributions chart
BASE, OTHER = "(typical applicant)", "(all other information)"


@dataclass(frozen=True)
class History:
    """A kind of history and how to tell that an applicant has none of it."""

    prefixes: tuple[str, ...]
    present_column: str
    fact: str


HISTORIES = (
    History(("BUR_", "HAS_BUREAU_HISTORY"), "HAS_BUREAU_HISTORY", "No credit with other lenders on record"),
    History(("PREV_", "HAS_PREVIOUS_APPLICATION"), "HAS_PREVIOUS_APPLICATION", "No earlier application with us"),
    History(("INST_",), "INST_COUNT", "No repayment history with us yet"),
    History(("POS_",), "POS_MONTHS", "No repayment history with us yet"),
    History(("CC_",), "CC_MONTHS", "No credit-card history with us yet"),
)


class Explainer:
    """Built once per model and feature dictionary; explains any number of rows."""

    def __init__(self, features: list[str], dictionary: pd.DataFrame, medians: dict[str, float], currency: str):
        lacking = {"documented", "unit", "direction", "reason_group", "protected"} - set(dictionary.columns)
        if lacking:
            raise ValueError(f"the feature dictionary lacks {sorted(lacking)}: it predates this version; rebuild it with "
                             "`credit-dagster run` (job build_all)")
        info = dictionary.drop_duplicates("feature").set_index("feature").reindex(features)
        documented = info["documented"].fillna(False).astype(bool).to_numpy()
        self.features, self.currency = features, currency
        self.meanings = [m if isinstance(m, str) else f for f, m in zip(features, info["meaning"], strict=True)]
        self.units = info["unit"].fillna("number").tolist()
        self.directions = info["direction"].fillna("?").tolist()
        self.medians = [medians.get(f) for f in features]
        # a protected or undocumented feature is never worded as a reason
        self.sayable = documented & ~info["protected"].fillna(False).astype(bool).to_numpy()
        groups = [g if isinstance(g, str) else f for f, g in zip(features, info["reason_group"], strict=True)]
        self.group_names = list(dict.fromkeys(groups))
        index = {g: i for i, g in enumerate(self.group_names)}
        self.group_of = np.array([index[g] for g in groups], dtype=int)
        self.members = [np.flatnonzero(self.group_of == i) for i in range(len(self.group_names))]
        # the facts of missing history, one column each after the groups (two kinds may share a fact)
        self.facts = list(dict.fromkeys(h.fact for h in HISTORIES))
        self.kind_of = np.full(len(features), -1)
        for k, history in enumerate(HISTORIES):
            self.kind_of[[j for j, f in enumerate(features) if f.startswith(history.prefixes)]] = k

    def _absent(self, rows: pd.DataFrame) -> np.ndarray:
        """Per row and kind of history, whether the applicant has none of it (a missing count is none)."""
        absent = np.zeros((len(rows), len(HISTORIES)), dtype=bool)
        for k, history in enumerate(HISTORIES):
            column = rows.get(history.present_column)
            if column is not None:
                absent[:, k] = pd.to_numeric(column, errors="coerce").fillna(0).to_numpy() == 0
        return absent

    def _sums(self, contributions: np.ndarray, absent: np.ndarray) -> np.ndarray:
        """Per row, the contribution of each group, then of each missing-history fact: a history
        the applicant lacks moves its features' contributions from their groups to its fact."""
        p, g = len(self.features), len(self.group_names)
        contrib = contributions[:, :p].copy()
        sums = np.zeros((len(contrib), g + len(self.facts)))
        for k, history in enumerate(HISTORIES):
            of_kind = self.kind_of == k
            moved = np.where(absent[:, k, None], contrib[:, of_kind], 0.0)
            sums[:, g + self.facts.index(history.fact)] += moved.sum(axis=1)
            contrib[:, of_kind] -= moved
        np.add.at(sums.T, self.group_of, contrib.T)
        return sums

    def reasons(self, contributions: np.ndarray, matrix: pd.DataFrame, rows: pd.DataFrame,
                k: int = N_REASONS) -> tuple[list[list[str]], list[list[str]], list[str | None]]:
        """For each row: up to k reasons (the groups that raised the risk most, worded), the
        features that worded them, and the missing-history facts that raised it (or None)."""
        absent = self._absent(rows)
        sums = self._sums(contributions, absent)
        g = len(self.group_names)
        contrib = contributions[:, : len(self.features)]
        candidates = {j: None for j in range(len(self.features))}
        texts, names, notes = [], [], []
        orders = np.argsort(-sums[:, :g], axis=1, kind="stable")  # every row's groups, the one that raised the risk most first
        for r in range(len(sums)):
            row_texts, row_names = [], []
            for group in orders[r]:
                if sums[r, group] <= 0 or len(row_texts) == k:
                    break
                members = self.members[group]
                for j in members[np.argsort(-contrib[r, members], kind="stable")]:
                    if contrib[r, j] <= 0:
                        break
                    if not self.sayable[j] or (self.kind_of[j] >= 0 and absent[r, self.kind_of[j]]):
                        continue
                    if candidates[j] is None:
                        candidates[j] = matrix.iloc[:, j].to_numpy(dtype=object)
                    sentence = wording.reason_sentence(self.meanings[j], self.units[j], self.directions[j],
                                                       candidates[j][r], self.medians[j], self.currency)
                    if sentence:
                        row_texts.append(sentence)
                        row_names.append(self.features[j])
                        break
            facts = [self.facts[i] for i in range(len(self.facts)) if sums[r, g + i] > 0]
            texts.append(row_texts)
            names.append(row_names)
            notes.append(facts[0] + "".join(f"; {f[:1].lower()}{f[1:]}" for f in facts[1:]) + "." if facts else None)
        return texts, names, notes

    def bars(self, ids: np.ndarray, contributions: np.ndarray, matrix: pd.DataFrame, rows: pd.DataFrame,
             k: int = TOP_BARS) -> pd.DataFrame:
        """Per applicant, the base value, the k groups that moved the score most (log-odds), each
        labelled by its strongest member and the client's value, and the rest summed: rank 0,
        1..k and k+1; they add up to the raw score."""
        p, g = len(self.features), len(self.group_names)
        sums = self._sums(contributions, self._absent(rows))
        k = min(k, sums.shape[1])
        contrib = contributions[:, :p]
        # for every row at once: the k groups that moved the score most, each group's strongest
        # member in the direction the group moved it, and what the other groups add up to
        top = np.argsort(-np.abs(sums), axis=1, kind="stable")[:, :k]
        strongest = np.zeros((len(sums), g), dtype=int)
        for group, members in enumerate(self.members):
            strongest[:, group] = members[np.argmax(np.sign(sums[:, group, None]) * contrib[:, members], axis=1)]
        other = contrib.sum(axis=1) - np.take_along_axis(sums, top, axis=1).sum(axis=1)
        values = matrix.to_numpy(dtype=object)
        out = []
        for r, (row_top, row_sums, row_strongest) in enumerate(zip(top.tolist(), sums.tolist(), strongest.tolist(), strict=True)):
            out.append((ids[r], 0, BASE, None, BASE, float(contributions[r, p])))
            for rank, column in enumerate(row_top, start=1):
                if column >= g:
                    fact = self.facts[column - g]
                    out.append((ids[r], rank, fact, None, fact, row_sums[column]))
                    continue
                j = row_strongest[column]
                shown, label = wording.bar_texts(self.meanings[j], self.units[j], values[r, j], self.currency)
                out.append((ids[r], rank, self.features[j], shown, label, row_sums[column]))
            out.append((ids[r], k + 1, OTHER, None, OTHER, float(other[r])))
        return pd.DataFrame(out, columns=["SK_ID_CURR", "rank", "feature", "value", "label", "contribution"])
