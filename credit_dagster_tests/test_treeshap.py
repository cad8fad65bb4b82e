"""TreeSHAP by table lookup (model/treeshap.py) against LightGBM's own `pred_contrib` and `predict`:
the same contributions and scores, to rounding, on trees that split every way LightGBM can."""

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from credit_dagster.model import treeshap
from credit_dagster.model.ensemble import Ensemble, as_float
from credit_dagster_tests.conftest import temporary_home


def lightgbm_answers(ensemble: Ensemble, matrix: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The oracle: each fold model's own pred_contrib and raw score, averaged, on `matrix`'s columns."""
    values, position = as_float(matrix), {c: i for i, c in enumerate(matrix.columns)}
    contributions, raw = np.zeros((len(matrix), matrix.shape[1] + 1)), np.zeros(len(matrix))
    for booster in ensemble.boosters:
        columns = [position[c] for c in booster.feature_name()]
        contributions[:, [*columns, matrix.shape[1]]] += booster.predict(values[:, columns], pred_contrib=True)
        raw += booster.predict(values[:, columns], raw_score=True)
    return contributions / len(ensemble.boosters), raw / len(ensemble.boosters)


def awkward_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Missing values, exact zeros, a categorical with missing and rare values, a constant."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    a[rng.random(n) < 0.2] = np.nan
    b = rng.integers(0, 4, n).astype(float)
    c = pd.Categorical(rng.choice(list("pqrstuvwxyz"), n, p=[0.3, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01]))
    c[rng.random(n) < 0.1] = np.nan
    d = rng.uniform(size=n)
    logit = np.nan_to_num(a) * 0.8 + (b == 0) * 0.7 + np.isin(np.asarray(c), ["p", "s", "x"]) - d + rng.normal(size=n)
    frame = pd.DataFrame({"a": a, "b": b, "c": c, "d": d, "flat": 1.0})
    return frame, (logit > 0.3).astype(int)


def fit(frame: pd.DataFrame, y: np.ndarray, columns: list[str], rounds: int = 40, **params) -> lgb.Booster:
    sub = frame[columns]
    categorical = [i for i, c in enumerate(columns) if isinstance(sub[c].dtype, pd.CategoricalDtype)]
    data = lgb.Dataset(as_float(sub), y, feature_name=columns, categorical_feature=categorical, free_raw_data=False)
    return lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 20, "learning_rate": 0.1, "num_leaves": 7,
                      "min_data_per_group": 5, "cat_smooth": 1, **params}, data, num_boost_round=rounds)


@pytest.mark.parametrize("params", [
    {},  # missing values to the side training chose
    {"zero_as_missing": True},  # zeros are missing
    {"use_missing": False},  # missing values read as zeros
    {"max_cat_to_onehot": 16},  # one category against the rest
    {"num_leaves": 3, "rounds": 80},  # shallow trees
])
def test_the_tables_give_lightgbm_s_contributions_and_scores_for_every_kind_of_split(params):
    frame, y = awkward_frame(3000, seed=1)
    # fold models reading different features, one tree too poor to split (a single leaf)
    ensemble = Ensemble([fit(frame, y, ["a", "b", "c", "d"], **params), fit(frame, y, ["c", "a", "flat"], **params),
                         fit(frame, y, ["b", "d"], min_data_in_leaf=3000)])
    assert ensemble.forest() is not None
    new, _ = awkward_frame(2000, seed=2)
    # values exactly on the thresholds (x <= threshold goes left), categories never seen, negatives
    thresholds = [n["threshold"] for b in ensemble.boosters for t in b.dump_model()["tree_info"]
                  for n in _splits(t["tree_structure"]) if n["decision_type"] == "<="]
    new.loc[: len(thresholds) - 1, "a"] = thresholds[: len(new)]
    new["c"] = new["c"].cat.add_categories(["unseen"])
    new.loc[1500:1510, "c"] = "unseen"
    new.loc[1600:1610, "b"] = -0.0
    new.loc[1700:1710, "d"] = [1e-40, -1e-40, 1e-36, -1e-36, 5e-324, 0.0, -0.0, 1e-30, -1e-30, 2e-35, -2e-35]  # LightGBM reads |x| <= 1e-35f as 0
    contributions, raw = lightgbm_answers(ensemble, new)
    np.testing.assert_allclose(ensemble.contributions(new), contributions, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ensemble.raw_score(new), raw, rtol=0, atol=1e-9)
    assert np.abs(contributions[:, :-1]).max() > 0.01  # the trees do use the features


def test_bigger_trees_are_left_to_lightgbm_with_the_same_answers():
    frame, y = awkward_frame(3000, seed=3)
    ensemble = Ensemble([fit(frame, y, ["a", "b", "c", "d"], num_leaves=15)])
    assert ensemble.forest() is None  # 14 splits: 2**14 ways a tree, more than tables are worth
    contributions, raw = lightgbm_answers(ensemble, frame)
    np.testing.assert_allclose(ensemble.contributions(frame), contributions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ensemble.raw_score(frame), raw, rtol=0, atol=1e-12)


def test_a_row_alone_and_in_a_crowd_gets_the_same_contributions():
    """The kernels score rows in blocks on several threads: no row's answer depends on its neighbours."""
    frame, y = awkward_frame(treeshap.BLOCK * 2 + 77, seed=4)
    ensemble = Ensemble([fit(frame, y, ["a", "b", "c", "d"])])
    together = ensemble.contributions(frame)
    for i in (0, treeshap.BLOCK - 1, treeshap.BLOCK, len(frame) - 1):
        np.testing.assert_array_equal(ensemble.contributions(frame.iloc[[i]]), together[[i]])


def test_the_deployed_model_s_tables_match_lightgbm_on_everyone_it_was_trained_on(scored_home):
    import duckdb

    from credit_dagster.model.registry import Registry

    home = scored_home
    with temporary_home(home):
        model = Registry(home / "models").load()
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        features = con.execute("select * from features.application_features").df()
    assert model.ensemble.forest() is not None  # the deployed recipe's 7 leaves: the tables are used
    matrix = model.matrix(features)
    contributions, raw = lightgbm_answers(model.ensemble, matrix)
    np.testing.assert_allclose(model.ensemble.contributions(matrix), contributions, rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.ensemble.raw_score(matrix), raw, rtol=0, atol=1e-9)


@pytest.mark.real_sample
def test_the_tables_match_lightgbm_on_the_real_sample(real_scored):
    import duckdb

    from credit_dagster.model.registry import Registry

    home, _, _ = real_scored
    with temporary_home(home):
        model = Registry(home / "models").load()
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        features = con.execute("select * from features.application_features").df()
    matrix = model.matrix(features)
    contributions, raw = lightgbm_answers(model.ensemble, matrix)
    np.testing.assert_allclose(model.ensemble.contributions(matrix), contributions, rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.ensemble.raw_score(matrix), raw, rtol=0, atol=1e-9)


def _splits(node: dict):
    if "split_index" in node:
        yield node
        yield from _splits(node["left_child"])
        yield from _splits(node["right_child"])


def test_the_registry_keeps_the_tables_and_reads_them_only_when_they_are_the_ones_it_kept(scored_home, tmp_path, caplog):
    """Saved at registration beside the fold models, read back identical; a changed or missing
    file is never read: the tables are built again from the fold models (the same numbers), as
    for a version an earlier release registered without them."""
    import json
    import shutil

    from credit_dagster.model.registry import TABLES, Registry

    registry = Registry(tmp_path / "models")
    shutil.copytree(scored_home / "models", registry.root)
    version = registry.alias("champion")
    folder = registry.root / version
    assert json.loads((folder / "metadata.json").read_text())["tables"]["file"] == TABLES
    boosters = registry.load(version).ensemble.boosters
    built = treeshap.Forest.of(boosters, [1 / len(boosters)] * len(boosters))
    saved = registry.load(version).ensemble.tables
    assert isinstance(saved, treeshap.Forest)

    def same(a: treeshap.Forest, b: treeshap.Forest) -> bool:
        return a.names == b.names and a.base == b.base and all(
            np.array_equal(getattr(a, f), getattr(b, f)) for f in ("feature", "threshold", "missing", "default_left", "categories",
                                                                   "categorical", "splits", "slot_feature", "slots", "phi", "leaf"))

    assert same(saved, built)
    data = bytearray((folder / TABLES).read_bytes())
    data[-200] ^= 1  # one bit of the file changed
    (folder / TABLES).write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        model = registry.load(version)
    assert "not the file registered with it" in caplog.text
    assert same(model.ensemble.forest(), built)
    (folder / TABLES).unlink()  # gone: the same
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert same(registry.load(version).ensemble.forest(), built)
    assert "missing or not the file registered with it" in caplog.text
    metadata = json.loads((folder / "metadata.json").read_text())
    del metadata["tables"]  # a version an earlier release registered
    (folder / "metadata.json").write_text(json.dumps(metadata))
    assert same(registry.load(version).ensemble.forest(), built)
