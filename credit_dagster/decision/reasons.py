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
        said: dict[tuple[int, object], str | None] = {}  # `_worded_key` -> its sentence: values repeat across rows
        texts, names, notes = [], [], []
        orders = np.argsort(-sums[:, :g], axis=1, kind="stable")  # every row's groups, the one that raised the risk most first
        # every row's members of each group, the one that raised the risk most first: sorted once for all rows
        ranked = [members[np.argsort(-contrib[:, members], axis=1, kind="stable")] for members in self.members]
        # what the loop reads, as Python values (a NumPy scalar per lookup costs more than the rest of the loop)
        sayable, kind_of = self.sayable.tolist(), self.kind_of.tolist()
        raised = sums[:, g:] > 0
        noted: dict[tuple[bool, ...], str | None] = {}  # the facts that raised the risk -> the note saying them
        for r in range(len(sums)):
            row_texts, row_names = [], []
            row_sums, row_contrib, row_absent = sums[r].tolist(), contrib[r].tolist(), absent[r].tolist()
            for group in orders[r].tolist():
                if row_sums[group] <= 0 or len(row_texts) == k:
                    break
                for j in ranked[group][r].tolist():
                    if row_contrib[j] <= 0:
                        break
                    if not sayable[j] or (kind_of[j] >= 0 and row_absent[kind_of[j]]):
                        continue
                    if candidates[j] is None:
                        candidates[j] = matrix.iloc[:, j].to_numpy(dtype=object)
                    value = candidates[j][r]
                    key = _worded_key(j, value)  # a missing value's sentence is None, kept like any other
                    if key not in said:
                        said[key] = wording.reason_sentence(self.meanings[j], self.units[j], self.directions[j], value,
                                                            self.medians[j], self.currency)
                    sentence = said[key]
                    if sentence:
                        row_texts.append(sentence)
                        row_names.append(self.features[j])
                        break
            facts = tuple(raised[r].tolist())
            if facts not in noted:
                said_facts = [fact for fact, up in zip(self.facts, facts, strict=True) if up]
                noted[facts] = (said_facts[0] + "".join(f"; {f[:1].lower()}{f[1:]}" for f in said_facts[1:]) + "."
                                if said_facts else None)
            texts.append(row_texts)
            names.append(row_names)
            notes.append(noted[facts])
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
        shown_as: dict[tuple[int, object], tuple[str | None, str]] = {}  # `_worded_key` -> its bar's texts
        n = len(sums)
        # the bars of every row, rank by rank: the base, the k groups, the rest
        feature, shown, label = (np.empty((n, k + 2), dtype=object) for _ in range(3))
        feature[:, 0] = label[:, 0] = BASE
        feature[:, k + 1] = label[:, k + 1] = OTHER
        for rank in range(1, k + 1):
            for r, (column, j) in enumerate(zip(top[:, rank - 1].tolist(),
                                                strongest[np.arange(n), np.minimum(top[:, rank - 1], g - 1)].tolist(), strict=True)):
                if column >= g:
                    feature[r, rank] = label[r, rank] = self.facts[column - g]
                    continue
                value = values[r, j]
                if (texts := shown_as.get(key := _worded_key(j, value))) is None:
                    texts = shown_as[key] = wording.bar_texts(self.meanings[j], self.units[j], value, self.currency)
                feature[r, rank] = self.features[j]
                shown[r, rank], label[r, rank] = texts
        contribution = np.column_stack([contributions[:, p], np.take_along_axis(sums, top, axis=1), other])
        return pd.DataFrame({"SK_ID_CURR": np.repeat(ids, k + 2), "rank": np.tile(np.arange(k + 2), n), "feature": feature.ravel(),
                             "value": shown.ravel(), "label": label.ravel(), "contribution": contribution.ravel()})


def _worded_key(j: int, value) -> tuple[int, object]:
    """Feature `j` and a value it takes, as the key of its wording within one call: a float by its
    exact bits (-0.0 is written "-0" where 0.0 is "0"; every NaN is "nan", missing), anything
    else as itself."""
    return (j, value.hex()) if isinstance(value, float) else (j, value)
