"""Exact TreeSHAP for an ensemble of small trees, by looking each tree's answer up.

LightGBM's `pred_contrib` walks every path of every tree for every row (O(leaves x depth²) per
tree and row): on a real night it was 18 of the scoring step's 47 s. A tree of at most
`MAX_SPLITS` splits (the deployed recipe grows 7 leaves: 6 splits) sends a row one way or the
other at each split, so its path-dependent SHAP values (the values `pred_contrib` gives: the
Shapley values of the game "the tree's expectation knowing the features of S", the branches of
unknown features weighted by their training counts) depend on the row only through those at
most 64 ways. They are computed once per model, by Shapley's formula over the tree's few
features, and a row's contributions are then one lookup per tree: the same numbers (to rounding,
tested against `pred_contrib` to 1e-9) at a small fraction of the time. The row's score is the
same lookup's leaf.

A model of bigger trees (more than `MAX_SPLITS` splits in a tree) is left to LightGBM:
`Forest.of` returns None.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import lightgbm as lgb
import numba
import numpy as np

MAX_SPLITS = 6  # 2**6 ways through a tree; each way's values cost 2**features subsets
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
_MISSING = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
BLOCK = 1024  # rows a kernel call scores tree after tree
ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold, a float (1e-35f): |x| at most this is "zero"


def _compiled(**options):
    """numba's njit, its machine code cached beside the module or in the user's cache: 2 s saved in
    each process that scores. A read-only image with no writable HOME has no place for the cache,
    and numba then refuses the decorator itself: compiled in each process instead."""
    def wrap(function):
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(**options)(function)
    return wrap


@dataclass(frozen=True)
class Forest:
    """Every tree of the ensemble's models, each tree's values scaled by its model's weight (1/k
    for the mean of k fold models), so that sums over all trees are the ensemble's."""

    names: list[str]  # the features the trees read, in the column order of `values`
    feature: np.ndarray  # (trees, MAX_SPLITS) column each split reads
    threshold: np.ndarray  # (trees, MAX_SPLITS) x <= threshold goes left (numerical splits)
    missing: np.ndarray  # (trees, MAX_SPLITS) MISSING_*
    default_left: np.ndarray  # (trees, MAX_SPLITS) where a missing value goes
    categories: np.ndarray  # (trees, MAX_SPLITS, words) bitset of the categories going left; all 0 for a numerical split
    categorical: np.ndarray  # (trees, MAX_SPLITS)
    splits: np.ndarray  # (trees,) how many splits each tree has
    slot_feature: np.ndarray  # (trees, MAX_SPLITS) the column of each of a tree's distinct features
    slots: np.ndarray  # (trees,) how many distinct features each tree reads
    phi: np.ndarray  # (trees, 2**MAX_SPLITS, MAX_SPLITS) SHAP value of each slot, for each way through the tree
    leaf: np.ndarray  # (trees, 2**MAX_SPLITS) the leaf each way reaches
    base: float  # the expected score: LightGBM's last contribution column

    @staticmethod
    def of(boosters: list[lgb.Booster], weights: list[float]) -> Forest | None:
        """The boosters' trees as tables, or None when a tree has more than MAX_SPLITS splits."""
        names = list(dict.fromkeys(f for b in boosters for f in b.feature_name()))
        trees = []
        for booster, weight in zip(boosters, weights, strict=True):
            columns = [names.index(f) for f in booster.feature_name()]
            for info in booster.dump_model()["tree_info"]:
                tree = _Tree.parse(info["tree_structure"], columns, weight)
                if tree.splits > MAX_SPLITS:
                    return None
                trees.append(tree)
        return _tabulate(names, trees)

    def save(self, path: Path) -> str:
        """The tables in one NumPy file (no pickle), written whole or not at all; its SHA-256."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self)} | {"names": np.array(self.names), "base": np.array(self.base)}
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    @staticmethod
    def read(path: Path, sha256: str) -> Forest | None:
        """The tables `save` wrote, or None when the file is gone or not the one whose SHA-256 was kept."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if hashlib.sha256(data).hexdigest() != sha256:
            return None
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            return Forest(**{f.name: saved[f.name] for f in fields(Forest)} | {"names": saved["names"].tolist(), "base": float(saved["base"])})

    def raw_score(self, values: np.ndarray, threads: int) -> np.ndarray:
        """The ensemble's score of each row of `values` (columns in `names` order)."""
        out = np.zeros(len(values))
        self._run(_raw_kernel, values, out, (self.leaf,), threads)
        return out

    def contributions(self, values: np.ndarray, threads: int) -> np.ndarray:
        """Per row, each feature's SHAP value in `names` order, then the base value (LightGBM's layout)."""
        out = np.zeros((len(self.names) + 1, len(values)))
        out[-1] = self.base
        self._run(_contrib_kernel, values, out, (self.slot_feature, self.slots, self.phi), threads)
        return out.T

    def _run(self, kernel, values: np.ndarray, out: np.ndarray, tables: tuple, threads: int) -> None:
        # a column per feature, its rows side by side: each split reads one column row after row
        columns = np.ascontiguousarray(values.T, dtype=np.float64)
        splits = (self.feature, self.threshold, self.missing, self.default_left, self.categorical, self.categories, self.splits)
        # blocks of rows small enough for a block's column to stay in cache, run on this process's
        # threads side by side (the kernels release the GIL)
        bounds = list(range(0, len(values), BLOCK)) + [len(values)]
        blocks = list(zip(bounds[:-1], bounds[1:], strict=True))
        if threads <= 1 or len(blocks) == 1:
            for start, stop in blocks:
                kernel(columns, start, stop, *splits, *tables, out)
            return
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda b: kernel(columns, b[0], b[1], *splits, *tables, out), blocks))


@dataclass
class _Tree:
    """One tree, its splits numbered 0.. and each leaf's path: (split, went left, count share)."""

    splits: int
    split_column: list[int]
    split_threshold: list[float]
    split_missing: list[int]
    split_default_left: list[bool]
    split_categories: list[list[int] | None]
    leaves: list[tuple[float, list[tuple[int, bool, float]]]]  # (value x weight, path)

    @staticmethod
    def parse(root: dict, columns: list[int], weight: float) -> _Tree:
        tree = _Tree(0, [], [], [], [], [], [])

        def visit(node: dict, path: list[tuple[int, bool, float]]) -> None:
            if "leaf_value" in node:
                tree.leaves.append((node["leaf_value"] * weight, path))
                return
            n = tree.splits
            tree.splits += 1
            tree.split_column.append(columns[node["split_feature"]])
            categorical = node["decision_type"] == "=="
            tree.split_threshold.append(0.0 if categorical else float(node["threshold"]))
            tree.split_categories.append([int(c) for c in str(node["threshold"]).split("||")] if categorical else None)
            tree.split_missing.append(_MISSING[node["missing_type"]])
            tree.split_default_left.append(bool(node["default_left"]))
            count = node["internal_count"]
            for child, left in ((node["left_child"], True), (node["right_child"], False)):
                share = (child["internal_count"] if "split_index" in child else child["leaf_count"]) / count
                visit(child, [*path, (n, left, share)])

        visit(root, [])
        return tree


def _tabulate(names: list[str], trees: list[_Tree]) -> Forest:
    t, ways = len(trees), 2**MAX_SPLITS
    words = max([1] + [max(c) // 64 + 1 for tr in trees for c in tr.split_categories if c])
    feature, slot_feature = np.zeros((t, MAX_SPLITS), np.int64), np.zeros((t, MAX_SPLITS), np.int64)
    threshold, missing = np.zeros((t, MAX_SPLITS)), np.zeros((t, MAX_SPLITS), np.int64)
    default_left, categorical = np.zeros((t, MAX_SPLITS), np.bool_), np.zeros((t, MAX_SPLITS), np.bool_)
    categories = np.zeros((t, MAX_SPLITS, words), np.uint64)
    splits, slots = np.zeros(t, np.int64), np.zeros(t, np.int64)
    leaves = max(len(tr.leaves) for tr in trees)
    leaf_value, path_split = np.zeros((t, leaves)), np.full((t, leaves, MAX_SPLITS), -1, np.int64)
    path_left, path_share = np.zeros((t, leaves, MAX_SPLITS), np.bool_), np.ones((t, leaves, MAX_SPLITS))
    split_slot = np.zeros((t, MAX_SPLITS), np.int64)
    for i, tree in enumerate(trees):
        splits[i] = n = tree.splits
        distinct = list(dict.fromkeys(tree.split_column))
        slots[i] = len(distinct)
        slot_feature[i, : len(distinct)] = distinct
        feature[i, :n], threshold[i, :n] = tree.split_column, tree.split_threshold
        missing[i, :n], default_left[i, :n] = tree.split_missing, tree.split_default_left
        split_slot[i, :n] = [distinct.index(c) for c in tree.split_column]
        for s, chosen in enumerate(tree.split_categories):
            if chosen is not None:
                categorical[i, s] = True
                for c in chosen:
                    categories[i, s, c // 64] |= np.uint64(1) << np.uint64(c % 64)
        for j, (value, path) in enumerate(tree.leaves):
            leaf_value[i, j] = value
            for k, (split, left, share) in enumerate(path):
                path_split[i, j, k], path_left[i, j, k], path_share[i, j, k] = split, left, share
    weights = np.array([[math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) if s < d else 0.0
                         for s in range(MAX_SPLITS + 1)] for d in range(MAX_SPLITS + 1)])
    phi, leaf = np.zeros((t, ways, MAX_SPLITS)), np.zeros((t, ways))
    base = np.zeros(t)
    _shapley_tables(splits, slots, split_slot, leaf_value, path_split, path_left, path_share, weights, phi, leaf, base)
    return Forest(names, feature, threshold, missing, default_left, categories, categorical, splits, slot_feature, slots,
                  phi, leaf, float(base.sum()))


@_compiled()
def _shapley_tables(splits, slots, split_slot, leaf_value, path_split, path_left, path_share, weights, phi, leaf, base):
    """For each tree and way through it (a bit per split: went left), the expectation v(S) of
    every subset S of its features (Lundberg et al.'s EXPVALUE: a split on a feature of S follows
    the way, any other weighs both branches by their counts), then each feature's Shapley value."""
    for t in range(len(splits)):
        d = slots[t]
        v = np.zeros(2**d)
        for way in range(2 ** splits[t]):
            for subset in range(2**d):
                total = 0.0
                for j in range(leaf_value.shape[1]):
                    w = leaf_value[t, j]
                    for k in range(path_split.shape[2]):
                        split = path_split[t, j, k]
                        if split < 0:
                            break
                        if (subset >> split_slot[t, split]) & 1:
                            if ((way >> split) & 1) != path_left[t, j, k]:
                                w = 0.0
                                break
                        else:
                            w *= path_share[t, j, k]
                    total += w
                v[subset] = total
            for f in range(d):
                value = 0.0
                for subset in range(2**d):
                    if not (subset >> f) & 1:
                        size = 0
                        for b in range(d):
                            size += (subset >> b) & 1
                        value += weights[d, size] * (v[subset | (1 << f)] - v[subset])
                phi[t, way, f] = value
            leaf[t, way] = v[2**d - 1]
        base[t] = v[0]


@numba.njit(inline="always")
def _ways(columns, start, stop, t, feature, threshold, missing, default_left, categorical, categories, splits, ways):
    """The bits of the way each row of start:stop goes through tree t (a bit per split, set when
    it goes left): LightGBM's NumericalDecision and CategoricalDecision, a split at a time over
    the rows of one column."""
    ways[:] = 0
    for s in range(splits[t]):
        column, bit = columns[feature[t, s]], 1 << s
        if categorical[t, s]:  # missing or negative: right; else left when its category is in the split's set
            for r in range(start, stop):
                value = column[r]
                if not np.isnan(value):
                    code = int(value)
                    if 0 <= code < categories.shape[2] * 64 and (categories[t, s, code >> 6] >> np.uint64(code & 63)) & np.uint64(1):
                        ways[r - start] |= bit
            continue
        # LightGBM's predictor keeps a row's values sparse: one within ZERO of 0 is read as 0, and so
        # is a missing one unless the split has missing values of its own; where each then goes is
        # the same for every row, so it is settled once a split
        limit, kind = threshold[t, s], missing[t, s]
        zero = default_left[t, s] if kind == MISSING_ZERO else 0.0 <= limit
        nan = default_left[t, s] if kind == MISSING_NAN else zero
        for r in range(start, stop):
            value = column[r]
            if np.isnan(value):
                left = nan
            elif -ZERO <= value <= ZERO:
                left = zero
            else:
                left = value <= limit
            ways[r - start] |= bit * left


@_compiled(nogil=True)
def _raw_kernel(columns, start, stop, feature, threshold, missing, default_left, categorical, categories, splits, leaf, out):
    ways = np.zeros(stop - start, np.int64)
    for t in range(len(splits)):
        _ways(columns, start, stop, t, feature, threshold, missing, default_left, categorical, categories, splits, ways)
        for r in range(start, stop):
            out[r] += leaf[t, ways[r - start]]


@_compiled(nogil=True)
def _contrib_kernel(columns, start, stop, feature, threshold, missing, default_left, categorical, categories, splits,
                    slot_feature, slots, phi, out):
    ways = np.zeros(stop - start, np.int64)
    for t in range(len(splits)):
        _ways(columns, start, stop, t, feature, threshold, missing, default_left, categorical, categories, splits, ways)
        for s in range(slots[t]):
            row = out[slot_feature[t, s]]
            for r in range(start, stop):
                row[r] += phi[t, ways[r - start], s]
