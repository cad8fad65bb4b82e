"""dbt-like SQL models: `dbt_like_sql/<group>/<table>.sql`, each a plain `select`.

Inputs are written `{{ ref('model') }}` or `{{ source('raw', 'table') }}`; the runner resolves
them to relations, derives dependencies, orders models, and creates each table atomically.
The header comment documents the model, and is what the Dagster UI and the feature
dictionary show:

    -- grain: one row per SK_ID_CURR
    -- description: What the table holds.
    -- BUR_ACTIVE_COUNT (+, count) [credits elsewhere]: Credits you have open with other lenders

`(+)` means a higher value goes with higher risk, `(-)` with lower risk, `(?)` not known, `(x)`
never a model input (the meaning says why). The unit (`wording.UNITS`) says how a value is shown
to a client; columns in one `[group]` tell the client one thing and make one reason. A name may
hold `*` (`FLAG_DOCUMENT_*`), and `{n}` in its meaning stands for what the `*` matched.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import duckdb

from credit_dagster.core.wording import UNITS

# the models ship as the package `dbt_like_sql` (its .sql files as package data): found the same
# way in a checkout and in an installed wheel
SQL_DIR = Path(str(importlib.resources.files("dbt_like_sql")))
_REF = re.compile(r"\{\{\s*ref\(\s*'([a-z0-9_]+)'\s*\)\s*\}\}")
_SOURCE = re.compile(r"\{\{\s*source\(\s*'([a-z0-9_]+)'\s*,\s*'([a-z0-9_]+)'\s*\)\s*\}\}")
_COLUMN_DOC = re.compile(r"^--\s*([A-Za-z0-9_*]+)\s*\(([+\-?x])(?:,\s*([a-z_]+))?\)(?:\s*\[([^\]]+)\])?:\s*(.+)$")
RISK_DIRECTION = {"+": "higher value, higher risk", "-": "higher value, lower risk", "?": "unknown", "x": "never a model input"}


class SqlModelError(ValueError):
    """A model that cannot be loaded or built; the message names the file."""


@dataclass(frozen=True)
class ColumnDoc:
    name: str  # a column, or a pattern with `*`
    direction: str  # "+", "-", "?" or "x"
    meaning: str
    unit: str = "number"
    group: str | None = None

    def matches(self, column: str) -> str | None:
        """The meaning for `column` when this doc is about it (`{n}` filled from the `*`), else None."""
        if "*" not in self.name:
            return self.meaning if column == self.name else None
        m = re.fullmatch(re.escape(self.name).replace(r"\*", "(.+)"), column)
        return self.meaning.replace("{n}", m.group(1)) if m else None


@dataclass(frozen=True)
class SqlModel:
    name: str
    group: str
    path: Path
    sql: str
    refs: tuple[str, ...]
    sources: tuple[tuple[str, str], ...]
    grain: str = ""
    description: str = ""
    columns: tuple[ColumnDoc, ...] = field(default_factory=tuple)

    def render(self, relation: Callable[[str, str], str]) -> str:
        """The SQL with refs and sources replaced by `relation(kind_or_schema, name)`."""
        sql = _REF.sub(lambda m: relation("ref", m.group(1)), self.sql)
        return _SOURCE.sub(lambda m: relation(m.group(1), m.group(2)), sql)


def parse_model(path: Path, root: Path) -> SqlModel:
    text = path.read_text()
    header = {}
    columns = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        if m := _COLUMN_DOC.match(line):
            name, direction, unit, group, meaning = m.groups()
            if unit is not None and unit not in UNITS:
                raise SqlModelError(f"{path}: {name} has unit {unit!r}; known units: {', '.join(UNITS)}")
            columns.append(ColumnDoc(name, direction, meaning.strip(), unit or "number", group))
        elif ":" in line:
            key, _, value = line[2:].partition(":")
            header[key.strip().lower()] = value.strip()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--")).strip().rstrip(";")
    if not re.match(r"(?is)^\s*(with|select)\b", body):
        raise SqlModelError(f"{path}: a model must be a plain select (or with ... select)")
    return SqlModel(
        name=path.stem,
        group=path.parent.relative_to(root).as_posix() or "default",
        path=path,
        sql=body,
        refs=tuple(dict.fromkeys(_REF.findall(body))),
        sources=tuple(dict.fromkeys(_SOURCE.findall(body))),
        grain=header.get("grain", ""),
        description=header.get("description", ""),
        columns=tuple(columns),
    )


def discover(root: Path = SQL_DIR) -> list[SqlModel]:
    """All models under `root`, in build order; unknown refs and cycles fail with the file names."""
    models = {}
    for path in sorted(root.rglob("*.sql")):
        model = parse_model(path, root)
        if model.name in models:
            raise SqlModelError(f"{path}: model name {model.name} is also used by {models[model.name].path}")
        models[model.name] = model
    for model in models.values():
        unknown = [r for r in model.refs if r not in models]
        if unknown:
            raise SqlModelError(f"{model.path}: ref to unknown model(s) {', '.join(unknown)}")
    try:
        order = list(TopologicalSorter({m.name: set(m.refs) for m in models.values()}).static_order())
    except CycleError as exc:
        cycle = exc.args[1]
        raise SqlModelError("ref cycle: " + " -> ".join(str(models[n].path.name) for n in cycle)) from exc
    return [models[name] for name in order]


def _target_and_sql(model: SqlModel, schemas: dict[str, str] | None) -> tuple[str, str]:
    """Where the model goes and its SQL, with `schemas` mapping a logical schema (`raw`, or a
    model's group) to the physical one."""
    schemas = schemas or {}

    def physical(logical: str) -> str:
        return schemas.get(logical, logical)

    sql = model.render(lambda kind, name: f"{physical(model.group if kind == 'ref' else kind)}.{name}")
    return f"{physical(model.group)}.{model.name}", sql


def build_model(
    con: duckdb.DuckDBPyConnection,
    model: SqlModel,
    *,
    schemas: dict[str, str] | None = None,
) -> int:
    """Create `<group>.<name>` from the model, atomically; returns its row count.

    `schemas` maps a logical schema (`raw`, or a model's group) to the physical one, which is
    how a nightly batch runs the same SQL on its own applicants' tables.
    """
    target, sql = _target_and_sql(model, schemas)
    con.execute(f"create schema if not exists {target.split('.')[0]}")
    con.execute("begin transaction")
    try:
        con.execute(f"create or replace table {target} as {sql}")
        rows = con.execute(f"select count(*) from {target}").fetchall()[0][0]
        con.execute("commit")
    except duckdb.Error as exc:
        con.execute("rollback")  # the previous table, if any, stays as it was
        raise SqlModelError(f"{model.path}: {exc}") from exc
    return rows


def create_view(con: duckdb.DuckDBPyConnection, model: SqlModel, *, schemas: dict[str, str] | None = None) -> None:
    """The model as a view: for rows that change at every call, where creating the table again
    each time would cost more than reading through the view."""
    target, sql = _target_and_sql(model, schemas)
    con.execute(f"create or replace view {target} as {sql}")


def insert_model(con: duckdb.DuckDBPyConnection, model: SqlModel, *, schemas: dict[str, str] | None = None) -> None:
    """Append the model's rows to its existing table."""
    target, sql = _target_and_sql(model, schemas)
    con.execute(f"insert into {target} by name {sql}")


def build_all(con: duckdb.DuckDBPyConnection, models: list[SqlModel], *, schemas: dict[str, str] | None = None) -> dict[str, int]:
    """Build every model in order (used for nightly batches and tests)."""
    return {m.name: build_model(con, m, schemas=schemas) for m in models}


def derivations(models: list[SqlModel]) -> dict[str, set[str]]:
    """Column lineage read from the SQL itself (DuckDB's own parser): each column a select computes
    (`<expression> as NAME`, anywhere in any model) -> the columns its expression reads. A column
    passed through keeps its name, so a name's lineage is the union over the models."""
    con = duckdb.connect()
    edges: dict[str, set[str]] = {}

    def column_refs(node) -> set[str]:
        found: set[str] = set()
        stack = [node]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if item.get("class") == "COLUMN_REF":
                    found.add(item["column_names"][-1].upper())
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        return found

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("alias") and node.get("class") not in (None, "COLUMN_REF") and "type" in node:
                edges.setdefault(node["alias"].upper(), set()).update(column_refs(node))
            for key, value in node.items():  # `* replace (expr as NAME)`: NAME computed from expr
                if key == "replace_list" and isinstance(value, list):
                    for pair in value:
                        edges.setdefault(str(pair["key"]).upper(), set()).update(column_refs(pair["value"]))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for model in models:
        tree = json.loads(con.execute("select json_serialize_sql(?)", [model.render(lambda kind, name: f"{kind}.{name}")]).fetchone()[0])
        if tree.get("error"):
            raise SqlModelError(f"{model.path}: DuckDB cannot parse it for lineage: {tree.get('error_message')}")
        walk(tree["statements"])
    return edges


def derived_from(models: list[SqlModel], roots: Iterable[str]) -> set[str]:
    """Every column computed, directly or through other computed columns, from any of `roots`."""
    edges, found = derivations(models), {r.upper() for r in roots}
    while True:
        more = {name for name, reads in edges.items() if reads & found} - found
        if not more:
            return found
        found |= more
