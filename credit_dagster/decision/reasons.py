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

from collections.abc import Callable
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
        totals, columns = sums.T, contrib.T  # a group's members added in their order, as np.add.at would, but faster
        for j, group in enumerate(self.group_of.tolist()):
            totals[group] += columns[j]
        return sums

    def reasons(self, contributions: np.ndarray, matrix: pd.DataFrame, rows: pd.DataFrame,
                k: int = N_REASONS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each row: up to k reasons (the groups that raised the risk most, worded), the
        features that worded them (each a row of k, None after the last), and the missing-history
        facts that raised it (or None).

        A group's reason is worded by its member that raised the risk most among those that can
        say it (sayable, of a history the applicant has, a sentence for the value); the groups
        that raised the risk, most first, give the reasons until k are said. Every row at once:
        the members that can speak are found by `wording.may_be_reason` on whole columns, then
        the sentences of the members chosen are made (once per distinct value) and any member
        whose value has none after all is struck out and the choice made again."""
        absent = self._absent(rows)
        sums = self._sums(contributions, absent)
        n, p, g = len(sums), len(self.features), len(self.group_names)
        contrib = contributions[:, :p]
        may = (contrib > 0) & self.sayable & ~self._absent_cells(absent)
        column = _columns(matrix)
        for j in np.flatnonzero(may.any(axis=0)).tolist():  # the wording's rules on whole columns
            may[:, j] &= wording.may_be_reason(self.units[j], self.directions[j], column(j), self.medians[j])
        orders = np.argsort(-sums[:, :g], axis=1, kind="stable")  # every row's groups, the one that raised the risk most first
        while True:
            # each group's member that raised the risk most among those that may word it (the first on a tie)
            weight = np.where(may, contrib, -np.inf)
            chosen = np.column_stack([members[np.argmax(weight[:, members], axis=1)] for members in self.members])
            worded = np.take_along_axis(weight, chosen, axis=1) > -np.inf
            # the groups that raised the risk and have a member to word them, most first, up to k a row
            speaks = np.take_along_axis(worded & (sums[:, :g] > 0), orders, axis=1)
            slot = np.cumsum(speaks, axis=1) - 1
            r, at = np.nonzero(speaks & (slot < k))
            j = chosen[r, orders[r, at]]
            sentences = np.empty(len(r), dtype=object)
            for feature in np.unique(j).tolist():
                cells = np.flatnonzero(j == feature)
                sentences[cells] = _each_value(column(feature)[r[cells]], lambda values, f=feature: wording.reason_sentences(
                    self.meanings[f], self.units[f], self.directions[f], values, self.medians[f], self.currency))
            unsaid = np.array([s is None for s in sentences.tolist()], dtype=bool)
            if not unsaid.any():
                break
            may[r[unsaid], j[unsaid]] = False  # no sentence for that value after all: the next member, or none, speaks
        texts, names = np.full((n, k), None, dtype=object), np.full((n, k), None, dtype=object)
        texts[r, slot[r, at]] = sentences
        names[r, slot[r, at]] = np.asarray(self.features, dtype=object)[j]
        # the missing-history facts that raised the risk, said once per combination
        combinations, which = np.unique(sums[:, g:] > 0, axis=0, return_inverse=True)
        said = np.array([self._note(c) for c in combinations.tolist()], dtype=object)
        return texts, names, said[which.ravel()]

    def _note(self, raised: list[bool]) -> str | None:
        """The missing-history facts that raised the risk, in one sentence."""
        facts = [fact for fact, up in zip(self.facts, raised, strict=True) if up]
        return facts[0] + "".join(f"; {f[:1].lower()}{f[1:]}" for f in facts[1:]) + "." if facts else None

    def _absent_cells(self, absent: np.ndarray) -> np.ndarray:
        """Per row and feature, whether it is of a kind of history the applicant lacks."""
        cells = np.zeros((len(absent), len(self.features)), dtype=bool)
        for kind in range(len(HISTORIES)):
            cells[:, self.kind_of == kind] = absent[:, kind, None]
        return cells

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
        n = len(sums)
        # the bars of every row, rank by rank: the base, the k groups, the rest
        feature, shown, label = (np.empty((n, k + 2), dtype=object) for _ in range(3))
        feature[:, 0] = label[:, 0] = BASE
        feature[:, k + 1] = label[:, k + 1] = OTHER
        facts = top >= g
        r, rank = np.nonzero(facts)
        feature[r, rank + 1] = label[r, rank + 1] = np.asarray(self.facts, dtype=object)[top[r, rank] - g]
        r, rank = np.nonzero(~facts)
        j = strongest[r, top[r, rank]]
        feature[r, rank + 1] = np.asarray(self.features, dtype=object)[j]
        column = _columns(matrix)
        for member in np.unique(j).tolist():
            cells = np.flatnonzero(j == member)
            texts = _each_value(column(member)[r[cells]], lambda values, f=member: [
                wording.bar_texts(self.meanings[f], self.units[f], value, self.currency) for value in values])
            shown[r[cells], rank[cells] + 1] = [t[0] for t in texts]
            label[r[cells], rank[cells] + 1] = [t[1] for t in texts]
        contribution = np.column_stack([contributions[:, p], np.take_along_axis(sums, top, axis=1), other])
        return pd.DataFrame({"SK_ID_CURR": np.repeat(ids, k + 2), "rank": np.tile(np.arange(k + 2), n), "feature": feature.ravel(),
                             "value": shown.ravel(), "label": label.ravel(), "contribution": contribution.ravel()})


def _columns(matrix: pd.DataFrame) -> Callable[[int], np.ndarray]:
    """Column `j` of the model's matrix: floats as float64, taken from one copy of them all (a
    column at a time, pandas' access cost more than a one-row call's reasons), anything else
    as Python objects."""
    is_float = (matrix.dtypes == np.float64).to_numpy()
    block, at = matrix.loc[:, is_float].to_numpy(), np.cumsum(is_float) - 1
    return lambda j: block[:, at[j]] if is_float[j] else matrix.iloc[:, j].to_numpy(dtype=object)


def _each_value(values: np.ndarray, word: Callable[[list], list]) -> np.ndarray:
    """What `word` says of each value, asked once of the distinct values: floats told apart by their exact bits
    (-0.0 is written "-0" where 0.0 is "0"; any NaN is missing), as the Python float the
    matrix's row would give; other values by pandas' factorize (its missing values are one)."""
    if values.dtype == np.float64:
        _, first, inverse = np.unique(values.view(np.int64), return_index=True, return_inverse=True)
        said = word(values[first].tolist())
    else:
        inverse, distinct = pd.factorize(values, use_na_sentinel=False)
        said = word(distinct.tolist())
    out = np.empty(len(said), dtype=object)
    out[:] = said
    return out[inverse.ravel()]
