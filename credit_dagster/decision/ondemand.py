"""Scoring applications on demand, outside the night: the API's scoring and the dashboard's what-if.

The submitted rows go through the very SQL models of the nightly run, in a private in-memory
DuckDB (never the warehouse, whose single writer is the night), then the champion, reasons and
counterfactuals of `scoring`. History features come from the rows submitted with an
application; an applicant sent without history rows keeps the history the platform already
holds: the history feature tables the serving snapshot publishes (`history_<model>`). Those
applications, the API's usual call, skip DuckDB's features query: their features are the
SQL's mirrored in NumPy (`Workspace.features_with_stored_history`), to the bit, a quarter of
the time.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from credit_dagster.core import settings
from credit_dagster.core.sources import SOURCE_TABLES
from credit_dagster.decision import counterfactuals, scoring
from credit_dagster.features import application_rows, sql_models
from credit_dagster.model.registry import RegisteredModel

APPLICATION = "application_test"
HISTORY_TABLES = ("bureau", "bureau_balance", "previous_application", "pos_cash_balance", "installments_payments", "credit_card_balance")
SUBMITTED, STORED, NONE = "submitted", "stored", "none"
log = logging.getLogger(__name__)
HISTORY_PREFIX = "history_"  # the serving snapshot's tables of each applicant's history features
NUMERIC_TYPES = {"BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL"}
_ARROW_TYPES = {"BIGINT": pa.int64(), "INTEGER": pa.int32(), "DOUBLE": pa.float64(), "VARCHAR": pa.string()}
_PANDAS_TYPES = {"BIGINT": "Int64", "INTEGER": "Int64", "DOUBLE": "Float64", "VARCHAR": "object"}


@dataclass
class Batch:
    """Applications in the application_test layout, and optional rows of the six history tables."""

    applications: pd.DataFrame
    history: dict[str, pd.DataFrame] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _models() -> tuple[list[sql_models.SqlModel], frozenset[str]]:
    models = sql_models.discover()
    return models, frozenset(scoring.models_reading(models, APPLICATION))


def history_models() -> list[str]:
    """The SQL models that aggregate history only: what an applicant keeps between applications."""
    models, reading_application = _models()
    return [m.name for m in models if m.name not in reading_application and any(s[0] == "raw" for s in m.sources)
            and ("raw", "application_train") not in m.sources]


def arrow_rows(table: str, rows: pd.DataFrame) -> pa.Table:
    """`rows` as an Arrow table with every declared column of `table` in its type. Column by
    column from one array of Python objects: for the few rows of an on-demand call, a tenth of
    the time of `Table.from_pandas` (which inspects each pandas column), and a fifth of taking
    the columns out of the frame one by one."""
    columns = SOURCE_TABLES[table].columns
    values = rows.reindex(columns=list(columns)).to_numpy(dtype=object)
    return pa.Table.from_arrays([pa.array(values[:, j], type=_ARROW_TYPES[t], from_pandas=True) for j, t in enumerate(columns.values())],
                                names=list(columns))


def typed(table: str, rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with every declared column of `table`, in nullable pandas types DuckDB maps one to one."""
    columns = SOURCE_TABLES[table].columns
    frame = rows.reindex(columns=list(columns))
    return frame.astype({c: _PANDAS_TYPES[t] for c, t in columns.items()})


class Workspace:
    """A private in-memory DuckDB where on-demand scoring runs, kept for the life of a thread.

    Its tables and views are created once: the history tables in the layout of the sources,
    the history models as tables (filled per call from the submitted rows or the stored
    history), and the models that read the application as views over the submitted
    applications and their counterfactual variants (`counterfactuals.variants_sql`; the unchanged
    application is the step amount 1, term 1). A call puts its rows in the submitted table
    and runs one features query, where creating every model again would spend more time in
    DuckDB's planner than in running them on a few rows. One workspace is never used by two
    threads at once."""

    RAW, FEATURES = "od", "od_features"
    SUBMITTED = "submitted_application"  # the table the call's applications are put in
    UNCHANGED = pd.DataFrame({"amount": [1.0], "term": [1.0]})
    # A call of up to this many applications runs the features query prepared once without
    # DuckDB's optimizer: binding 330 columns through the views, and optimizing a plan that
    # buys nothing on a few rows, cost more than running it. A larger batch is planned anew
    # (its join order pays).
    PREPARED_UP_TO = 20
    QUERY = f"select * from {FEATURES}.application_features"

    def __init__(self, threads: int | None = None) -> None:
        models, reading_application = _models()
        self.con = duckdb.connect(config={"threads": threads or settings.threads()})
        self._stored: tuple | None = None  # (path, inode, mtime) of the attached snapshot
        self._published: set[str] = set()
        self._filled: set[str] = set()  # history tables holding rows of the last call
        self._holding: set[str] = set()  # history feature tables holding rows of the last call
        self._searched: bool | None = None  # which steps cf_steps holds
        for name in (self.RAW, self.FEATURES):
            self.con.execute(f"create schema {name}")
        for table in ("application_train", *HISTORY_TABLES):
            self.con.execute(f"create table {self.RAW}.{table} ({SOURCE_TABLES[table].columns_sql()})")
        self.con.execute("create table cf_steps (amount DOUBLE, term DOUBLE)")
        self.con.execute(f"create table {self.SUBMITTED} ({SOURCE_TABLES[APPLICATION].columns_sql()})")
        self.con.execute(f"create view {self.RAW}.{APPLICATION} as "
                         + counterfactuals.variants_sql(self.SUBMITTED, f"(select SK_ID_CURR from {self.SUBMITTED})", "cf_steps"))
        schemas = {"raw": self.RAW, "features": self.FEATURES}
        self.history = [m for m in models if m.name not in reading_application]
        for m in models:
            if m.name in reading_application:
                sql_models.create_view(self.con, m, schemas=schemas)
            else:  # on the empty raw tables: the model's columns and types, no rows
                sql_models.build_model(self.con, m, schemas=schemas)
        # data changes (the submitted rows, the history, the steps) never make DuckDB bind it again
        self.con.execute("pragma disable_optimizer")
        self.con.execute(f"prepare features_query as {self.QUERY}")
        self.con.execute("pragma enable_optimizer")
        # the reading depends on the SQL alone: made by the process's first workspace (0.25 s of probe queries), kept for the others
        key = tuple((m.name, m.sql) for m in models)
        if key not in _MIRRORS:
            _MIRRORS[key] = self._read_mirror(next(m for m in models if m.name == "application_features"))
        self.mirror = _MIRRORS[key]

    def load_history(self, history: dict[str, pd.DataFrame]) -> None:
        """Replace the history rows by `history` (tables not given are left empty) and build
        their history features."""
        for table in self._filled | set(history):
            self.con.execute(f"delete from {self.RAW}.{table}")
        for table, rows in history.items():
            self._insert(f"{self.RAW}.{table}", table, rows)
        for name in self._holding:
            self.con.execute(f"delete from {self.FEATURES}.{name}")
        if history:
            for m in self.history:
                sql_models.insert_model(self.con, m, schemas={"raw": self.RAW, "features": self.FEATURES})
        self._filled = set(history)
        self._holding = {m.name for m in self.history} if history else set()

    def add_stored_history(self, ids: list[int], snapshot: Path | None) -> set[int]:
        """Copy the published history features of `ids` into the history tables; the ids found."""
        alias = self._attach(snapshot)
        if not ids or alias is None:
            return set()
        # a list of constants (ints, never text) is a filter DuckDB answers from the snapshot's
        # index on SK_ID_CURR, where a join with a table of ids would scan every row
        listed = ", ".join(str(int(i)) for i in ids)
        found = set()
        for name in [m.name for m in self.history if f"{HISTORY_PREFIX}{m.name}" in self._published]:
            found |= {r[0] for r in self.con.execute(f"""insert into {self.FEATURES}.{name} by name
                select * from {alias}.{HISTORY_PREFIX}{name} where SK_ID_CURR in ({listed}) returning SK_ID_CURR""").fetchall()}
            self._holding.add(name)
        return found

    def features(self, applications: pd.DataFrame, searched: bool) -> pd.DataFrame:
        """The features of `applications` (`cf_amount` and `cf_term` 1), and of their
        counterfactual variants when `searched`."""
        if searched != self._searched:
            self.con.execute("delete from cf_steps")
            self.con.register("steps", pd.concat([self.UNCHANGED, counterfactuals.steps()]) if searched else self.UNCHANGED)
            self.con.execute("insert into cf_steps select * from steps")
            self.con.unregister("steps")
            self._searched = searched
        self.con.execute(f"delete from {self.SUBMITTED}")
        self._insert(self.SUBMITTED, APPLICATION, applications)
        return scoring.frame(self.con, "execute features_query" if len(applications) <= self.PREPARED_UP_TO else self.QUERY)

    def features_with_stored_history(self, applications: pd.DataFrame, snapshot: Path | None,
                                     searched: bool) -> tuple[pd.DataFrame, set[int]]:
        """`features` for applications sent without history rows, computed by `self.mirror`: the
        application's own in NumPy (application_rows.clean), the published history features of
        its applicant looked up; and the ids whose history was found. Column by column in arrays,
        made a frame once: pandas would spend more time than the rest on a frame per step."""
        mirror, table = self.mirror, arrow_rows(APPLICATION, applications)
        steps = pd.concat([self.UNCHANGED, counterfactuals.steps()], ignore_index=True) if searched else self.UNCHANGED
        at = np.repeat(np.arange(table.num_rows), len(steps))  # each application once per step
        columns = application_rows.variants(application_rows.arrays(table),
                                            at, *(np.tile(steps[c].to_numpy(), table.num_rows) for c in ("amount", "term")))
        ids = table.column("SK_ID_CURR").to_numpy()  # an application's, before its steps
        found: set[int] = set()
        for name, held in self._stored_history(sorted({int(i) for i in ids}), snapshot).items():
            found |= set(held)
            for j, column in enumerate(mirror.history[name]):
                values = [held[i][j] if i in held else None for i in ids]
                default = mirror.defaults.get(column)  # coalesce(column, default)
                values = [default if v is None else v for v in values] if default is not None else values
                numeric = mirror.numeric[column]
                columns[column] = np.array([np.nan if v is None else v for v in values] if numeric else values,
                                           dtype=float if numeric else object)[at]
            columns |= dict.fromkeys(mirror.presence[name], np.isin(ids, list(held)).astype(np.int32)[at])
        return pd.DataFrame({c: columns[c] for c in mirror.columns}), found

    def _stored_history(self, ids: list[int], snapshot: Path | None) -> dict[str, dict[int, tuple]]:
        """Per history model, the published history features of `ids` (SK_ID_CURR -> the row,
        in the mirror's columns); none where the snapshot does not publish the model."""
        alias = self._attach(snapshot) if ids else None
        listed = ", ".join(str(i) for i in ids)  # constants: the snapshot's index answers (see add_stored_history)
        held = {}
        for name, columns in self.mirror.history.items():
            held[name] = {}
            if alias is not None and f"{HISTORY_PREFIX}{name}" in self._published:
                selected = ", ".join(f'"{c}"' for c in ["SK_ID_CURR", *columns])
                rows = self.con.execute(f"select {selected} from {alias}.{HISTORY_PREFIX}{name} where SK_ID_CURR in ({listed})").fetchall()
                held[name] = {r[0]: r[1:] for r in rows}
        return held

    def _read_mirror(self, features_model: sql_models.SqlModel) -> application_rows.Mirror | None:
        """What application_features.sql does with the history features, read from the SQL
        itself by running it on one application: once without any history
        (each column's value for an applicant without that history), then once per history
        model with a row of missing values (a column the SQL fills is coalesced; a column 0
        without the row and 1 with it says the row exists), and once with a row of values (each
        must come out unchanged: no expression over it). None, and the DuckDB path for every
        call, when the SQL does something else, or application_clean has columns
        `application_rows.clean` does not make."""
        # an application of values (2 in a number, 'probe' in a text): an expression that mixes
        # its values into a history column changes that column
        probe = pd.DataFrame({c: [2 if t != "VARCHAR" else "probe"] for c, t in SOURCE_TABLES[APPLICATION].columns.items()}).assign(SK_ID_CURR=0)
        self.features(probe, searched=False)
        clean_columns = [d[0] for d in self.con.execute(f"select * from {self.FEATURES}.application_clean limit 0").description]
        base = self._probe_row()
        columns = list(base.index)
        table = arrow_rows(APPLICATION, probe)
        made = {*table.column_names, "cf_amount", "cf_term",
                *application_rows.clean(application_rows.arrays(table))}
        if made != set(clean_columns):
            log.warning("application_rows.clean does not make application_clean's columns: on-demand features by DuckDB only")
            return None
        history, presence, defaults, numeric = {}, {}, {}, {}
        for name in [r for r in features_model.refs if r != "application_clean"]:
            described = self.con.execute(f"describe {self.FEATURES}.{name}").fetchall()
            history[name] = [c for c, *_ in described if c != "SK_ID_CURR"]
            numeric |= {c: t.split("(")[0] in NUMERIC_TYPES for c, t, *_ in described}
            found = self._probe_with(name, "0 as SK_ID_CURR")  # a row of missing values
            # and a row of values (3 in a number, 'probe' in a text): each must come out as it went in
            probed = {c: 3 if numeric[c] else "probe" for c, t, *_ in described
                      if c != "SK_ID_CURR" and ((numeric[c] and t != "BOOLEAN") or t == "VARCHAR")}
            valued = self._probe_with(name, ", ".join(["0 as SK_ID_CURR", *(f'{v!r} as "{c}"' for c, v in probed.items())]))
            changed = [c for c in columns if not (pd.isna(base[c]) and pd.isna(found[c])) and base[c] != found[c]]
            presence[name] = [c for c in changed if base[c] == 0 and found[c] == 1 and c not in clean_columns
                              and all(c not in h for h in history.values())]
            defaults |= {c: base[c] for c in history[name] if pd.notna(base[c])}
            as_given = all(valued[c] == v for c, v in probed.items())
            if set(changed) != set(presence[name]) or any(pd.notna(found[c]) and found[c] != base[c] for c in history[name]) \
                    or not as_given or any(valued[c] != 1 for c in presence[name]):
                log.warning("application_features.sql does more than join %s: on-demand features by DuckDB only", name)
                return None
        if set(columns) != set(clean_columns) | {c for cs in history.values() for c in cs} | {c for cs in presence.values() for c in cs}:
            log.warning("application_features.sql has columns the mirror does not make: on-demand features by DuckDB only")
            return None
        return application_rows.Mirror(columns, history, presence, defaults, numeric)

    def _probe_row(self) -> pd.Series:
        return scoring.frame(self.con, "execute features_query").iloc[0]

    def _probe_with(self, model: str, row: str) -> pd.Series:
        """The probe application's features with history model `model` holding the one row `row`
        (a select list), which goes again after."""
        self.con.execute(f"insert into {self.FEATURES}.{model} by name select {row}")
        try:
            return self._probe_row()
        finally:
            self.con.execute(f"delete from {self.FEATURES}.{model}")

    def _insert(self, target: str, table: str, rows: pd.DataFrame) -> None:
        """Append `rows`, in the declared layout of source `table`, to table `target`."""
        self.con.register("rows_in", arrow_rows(table, rows))
        self.con.execute(f"insert into {target} by name select * from rows_in")
        self.con.unregister("rows_in")

    def _attach(self, snapshot: Path | None) -> str | None:
        """The snapshot attached read-only under an alias, re-attached when the file was
        replaced (os.replace): a call reads one snapshot from start to end."""
        try:
            stat = snapshot.stat() if snapshot is not None else None
        except FileNotFoundError:
            stat = None
        if stat is None:
            return None
        identity = (str(snapshot), stat.st_ino, stat.st_mtime_ns)
        if identity != self._stored:
            if self._stored is not None:
                self.con.execute("detach stored")
            self.con.execute(f"attach '{snapshot}' as stored (read_only)")
            self._published = {r[0] for r in self.con.execute(
                "select table_name from information_schema.tables where table_catalog = 'stored'").fetchall()}
            self._stored = identity
        return "stored"


_workspaces = threading.local()
_MIRRORS: dict[tuple, application_rows.Mirror | None] = {}  # the SQL models' (name, text) -> the workspaces' reading of them
_opened: weakref.WeakSet[Workspace] = weakref.WeakSet()  # a thread's workspace goes with the thread


def workspace(threads: int | None = None) -> Workspace:
    """This thread's workspace, created on first use with `threads` (default CREDIT_THREADS)."""
    if not hasattr(_workspaces, "current"):
        _workspaces.current = Workspace(threads)
        _opened.add(_workspaces.current)
    return _workspaces.current


def mirror() -> application_rows.Mirror | None:
    """This thread's workspace's reading of the features SQL (None: the SQL models only), for
    the night's counterfactual search."""
    return workspace().mirror


@atexit.register
def _close_workspaces() -> None:
    # a daemon thread's locals are never collected: close its connection before DuckDB unloads
    for ws in list(_opened):
        ws.con.close()


def score(batch: Batch, model: RegisteredModel, dictionary: pd.DataFrame, stored_history: Path | None,
          *, search_counterfactuals: bool = True, threads: int | None = None) -> pd.DataFrame:
    """Score `batch` as the night would: one row per application with the nightly fields
    (PD, points, grade, decision, reasons, counterfactual, fingerprint) and `history_source`.
    Without `search_counterfactuals` (the dashboard's what-if), the counterfactual is empty.
    `threads`: DuckDB's, when this thread first scores (default CREDIT_THREADS)."""
    ids = batch.applications["SK_ID_CURR"].astype("int64").tolist()
    ws = workspace(threads)
    given = {t: rows for t, rows in batch.history.items() if len(rows)}
    submitted = {int(i) for t, rows in given.items() if t != "bureau_balance" for i in rows["SK_ID_CURR"].dropna()} & set(ids)
    if given or ws.mirror is None:
        ws.load_history(given)
        stored = ws.add_stored_history([i for i in ids if i not in submitted], stored_history)
        rows = ws.features(batch.applications, search_counterfactuals)
    else:
        rows, stored = ws.features_with_stored_history(batch.applications, stored_history, search_counterfactuals)
    matrix = model.matrix(rows)  # once for the applications and their variants
    unchanged = ((rows["cf_amount"] == 1.0) & (rows["cf_term"] == 1.0)).to_numpy()
    features = rows[unchanged].drop(columns=["cf_amount", "cf_term"]).reset_index(drop=True)
    scored = scoring.score_frame(model, features, dictionary, matrix=matrix[unchanged].reset_index(drop=True))
    refused = (scored.loc[(scored["decision"] != scoring.GRANTED) & ~scored["held_back"], "SK_ID_CURR"].tolist()
               if search_counterfactuals else [])
    searched = ~unchanged & rows["SK_ID_CURR"].isin(refused).to_numpy()
    cf = (counterfactuals.describe(refused, [counterfactuals.closest_granted(model, rows[searched], matrix=matrix[searched])], model)
          if refused else pd.DataFrame(columns=counterfactuals.COLUMNS))
    scored = counterfactuals.attach(scored, cf)
    scored["history_source"] = [SUBMITTED if i in submitted else STORED if i in stored else NONE for i in scored["SK_ID_CURR"]]
    scored["unknown_categories"] = unknown_categories(model, features)
    # answer in the order asked
    return scored.set_index("SK_ID_CURR").loc[ids].reset_index()


def unknown_categories(model: RegisteredModel, features: pd.DataFrame) -> list[dict[str, str]]:
    """Per row, the category values the model never saw in training (scored as missing)."""
    known = {c: set(v) for c, v in model.metadata.categories.items() if c in features}
    values = {c: features[c].to_numpy(dtype=object) for c in known}
    return [{c: str(values[c][i]) for c in known if pd.notna(values[c][i]) and str(values[c][i]) not in known[c]}
            for i in range(len(features))]


def history_tables_sql(drop_schemas: list[str]) -> dict[str, str]:
    """`history_<model>` tables for the serving snapshot: each applicant's newest history
    features, from the latest drop that had them, else from the training build."""
    tables = {}
    for name in history_models():
        sources = [f"select *, {i} as _rank from {s}_features.{name}" for i, s in enumerate(sorted(drop_schemas, reverse=True))]
        sources.append(f"select *, {len(drop_schemas)} as _rank from features.{name}")
        # sorted by applicant: a lookup of a few ids reads only the row groups that hold them
        tables[f"{HISTORY_PREFIX}{name}"] = (f"select * exclude (_rank) from ({' union all by name '.join(sources)}) "
                                     "qualify row_number() over (partition by SK_ID_CURR order by _rank) = 1 order by SK_ID_CURR")
    return tables
