"""A stored decision re-made and compared: the night's own features for the applicant, the model
version its record names, the refer-everything switch as it stood, scored again; then the
counterfactual searched again through the same SQL models. Every figure of the record is
compared with the one replayed (probabilities to 1e-12), and what differs is said by name.

The night's features are the drop's `<drop>_features.application_features`, kept in the
warehouse with the drop (a night swept by retention cannot be replayed: said so). The feature
dictionary is today's: when a release reworded a reason, the replay says that this line differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from credit_dagster.core import pseudonyms, refer_all
from credit_dagster.decision import counterfactuals, ondemand, scoring
from credit_dagster.decision.reasons import N_REASONS
from credit_dagster.model.registry import Registry

TOLERANCE = 1e-12  # probabilities and raw scores: the same model on the same features gives the same floats
COMPARED = ("probability_of_default", "raw_score", "points", "grade", "decision",
            *[f"reason_{i}" for i in range(1, N_REASONS + 1)], "reason_features", "history_note", "features_fingerprint",
            "counterfactual")


class NotReplayable(LookupError):
    """The decision, its night's features or its model version are not there any more."""


@dataclass
class Replay:
    """A stored decision (`stored`: its audit record) beside the same decision made again."""

    stored: dict
    replayed: dict
    differences: dict[str, tuple] = field(default_factory=dict)  # column -> (stored, replayed)

    @property
    def same(self) -> bool:
        return not self.differences

    def lines(self) -> list[str]:
        """What a model-risk reviewer reads: the record, then each compared figure and its verdict."""
        body = [f"  {'DIFFERS' if c in self.differences else 'same   '} {c}: {_shown(self.stored.get(c))}"
                + (f"\n          replayed: {_shown(self.replayed.get(c))}" if c in self.differences else "") for c in COMPARED]
        verdict = ("replayed exactly: every figure, reason and the counterfactual are the record's" if self.same
                   else f"{len(self.differences)} of {len(COMPARED)} differ: {', '.join(self.differences)}")
        return [*heading(self.stored), *body, verdict]


def heading(record: dict) -> list[str]:
    """Which decision a record is, and the model and policy that made it."""
    return [f"applicant {record['SK_ID_CURR']}, night {record['partition_date']}, scored {record['scored_at']} by run {record['run_id']}",
            f"model {record['model_version']} (threshold {record['threshold']:.6f}, refer band {record['refer_low']:.6f} to "
            f"{record['refer_high']:.6f}, calibration {record['calibration']})"]


def shown(record: dict) -> list[str]:
    """A stored decision as `credit-dagster decision show` prints it."""
    return [*heading(record), *[f"  {c}: {_shown(record.get(c))}" for c in COMPARED]]


def _shown(value) -> str:
    return "(none)" if value is None else repr(value) if isinstance(value, float) else str(value)


def stored_records(con: duckdb.DuckDBPyConnection, sk_id: int | None = None, night: str | None = None) -> list[dict]:
    """The audit records of the decisions that stand as the night made them: of one applicant
    (`sk_id`: of `night`, or of the latest night that scored them), or of every applicant of
    `night`; each applicant's last scoring of the night."""
    if sk_id is None and night is None:
        raise ValueError("an applicant, a night, or both")
    conditions = [c for c, v in (("SK_ID_CURR = ?", sk_id), ("partition_date = ?", night)) if v is not None]
    params = [v for v in (sk_id, night) if v is not None]
    rows = con.execute(f"""select * from scoring.decision_audit where {' and '.join(conditions)}
                           qualify row_number() over (partition by SK_ID_CURR, partition_date order by scored_at desc) = 1
                           order by partition_date desc, SK_ID_CURR""", params).df()
    if sk_id is not None:
        rows = rows.head(1)
        alias = pseudonyms.known(sk_id) if rows.empty else None
        if alias is not None and sk_id >= 0:  # their data erased: the decision kept under their pseudonym
            return stored_records(con, alias, night)
    if rows.empty:
        raise NotReplayable("no decision" + (f" for applicant {sk_id}" if sk_id is not None else "")
                            + (f" on night {night}" if night else "") + " in scoring.decision_audit")
    return [{k: _none(v) for k, v in row.items()} for row in rows.to_dict("records")]


def replay(con: duckdb.DuckDBPyConnection, registry: Registry, records: list[dict], drop_schema: str) -> list[Replay]:
    """Make the decisions of `records` (of one night) again from the night's features in
    `drop_schema`_features and compare each with its record. `con` may read the warehouse
    read-only beside an in-memory database (`Warehouse.connect(scratch=True)`): the counterfactual
    search writes its work tables in an in-memory catalog."""
    ids = [int(r["SK_ID_CURR"]) for r in records]
    try:
        con.register("replay_ids", pd.DataFrame({"SK_ID_CURR": ids}))
        features = con.execute(f"select f.* from {drop_schema}_features.application_features f join replay_ids using (SK_ID_CURR)").df()
    except duckdb.CatalogException as gone:
        raise NotReplayable(f"the features of night {records[0]['partition_date']} are not kept any more ({drop_schema}_features: "
                            f"{str(gone).splitlines()[0]})") from gone
    missing = set(ids) - set(features["SK_ID_CURR"])
    if missing:
        raise NotReplayable(f"applicant(s) {sorted(missing)[:5]} not in {drop_schema}_features.application_features")
    dictionary = con.execute("select * from features.feature_dictionary").df()
    replayed = {}
    # the switch as it stood: its reason leads the reasons of every decision it held back
    groups = pd.DataFrame({"SK_ID_CURR": ids, "version": [r["model_version"] for r in records],
                           "switch": [r.get("reason_1") == refer_all.REASON for r in records]})
    for (version, on), group in groups.groupby(["version", "switch"]):
        try:
            model = registry.load(version)
        except LookupError as gone:
            raise NotReplayable(str(gone)) from gone
        rows = features[features["SK_ID_CURR"].isin(group["SK_ID_CURR"])].reset_index(drop=True)
        again = scoring.score_frame(model, rows, dictionary, switch=refer_all.Switch(on=True) if on else refer_all.OFF)
        again = counterfactuals.attach(again, _search(con, model, drop_schema, again))
        replayed |= {row["SK_ID_CURR"]: {k: _none(v) for k, v in row.items()} for row in again.to_dict("records")}
    results = []
    for record in records:
        again = replayed[int(record["SK_ID_CURR"])]
        results.append(Replay(record, again, {c: (record.get(c), again.get(c)) for c in COMPARED if not _equal(record.get(c), again.get(c))}))
    return results


def _search(con: duckdb.DuckDBPyConnection, model, drop_schema: str, scored: pd.DataFrame) -> pd.DataFrame:
    """The counterfactuals as the night searched them (the refused and referred, not held back),
    searched in an in-memory catalog beside the warehouse's."""
    ids = scored.loc[(scored["decision"] != scoring.GRANTED) & ~scored["held_back"], "SK_ID_CURR"].astype(int).tolist()
    catalog = con.execute("select current_database()").fetchone()[0]
    con.execute("attach if not exists ':memory:' as replay_work")
    con.execute("use replay_work")
    try:
        return counterfactuals.search(con, model, f"{catalog}.{drop_schema}", ids, work_schema="cf_replay", mirror=ondemand.mirror())
    finally:
        con.execute(f"use {catalog}")


def _none(value):
    return None if not isinstance(value, str) and np.ndim(value) == 0 and pd.isna(value) else value


def _equal(stored, replayed) -> bool:
    if stored is None or replayed is None:
        return stored is None and replayed is None
    if isinstance(stored, float) or isinstance(replayed, float):
        return abs(float(stored) - float(replayed)) <= TOLERANCE
    return str(stored) == str(replayed)
