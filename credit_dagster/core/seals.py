"""Each night's decisions sealed: their audit rows hash-chained, the chain recorded outside the warehouse.

`scoring.decision_audit` only grows, but a file can be edited. When a night's run has written its
rows, they are chained in SK_ID_CURR order (each row's link is the SHA-256 of the previous link and
the row's digest, every column as it was written) and the run's seal — its row count, the columns
read, the link after every `BLOCK` rows, the head, and the SHA-256 of a file of the rows' shortened
digests — is appended to the night-seals journal (itself a hash chain, fsync'ed, walked by
`credit-dagster audit verify`), and the head goes to the run's Dagster metadata: two copies outside
the warehouse. `verify` chains the rows again: an edited, deleted or inserted row changes every link
after it; the rows' digests then name the first row that differs (the first block whose link
differs, if that file was changed too), and rows of a run that has no seal are named too — but for
the runs written before nights were sealed, which the first seal names (counted, not checked).

A link covers a row through its digest (the SHA-256 of the row as JSON), so a row a person's
erasure pseudonymised (subject/erase.py) still verifies: the erasure journal keeps, for each such
row, its place in the night, its digest as sealed and its digest as it now is; `verify` puts the
sealed digest in that place only while the row is exactly as the erasure left it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from credit_dagster.core import audit

AUDIT = "scoring.decision_audit"
BLOCK = 100  # rows between two links kept in the seal: where a change is located to
ORDER = "SK_ID_CURR"
SCHEME = 2  # links over row digests (1: over the rows' JSON, before erasures existed)


@dataclass
class Checked:
    runs: int
    rows: int
    problems: list[str]
    unsealed_before: int  # rows of runs written before seals existed: counted, not checked
    retired: int = 0  # runs whose rows retention removed (retention/policy.py): their seals no longer checked
    deferred: int = 0  # sealed runs not chained again this time (`due`): their turn comes within the rotation


def seal(con: duckdb.DuckDBPyConnection, night: str, run_id: str, folder: Path | None = None) -> dict:
    """Chain the rows run `run_id` wrote and append its seal (fsync'ed); the seal."""
    folder = folder or audit.audit_dir()
    columns, rows = ordered(con, run_id)
    digests = [digest(row) for row in rows]
    links = _links(digests)
    record = {"night": night, "run_id": run_id, "scheme": SCHEME, "rows": len(links), "columns": columns, "block": BLOCK,
              "blocks": links[BLOCK - 1 :: BLOCK], "head": links[-1] if links else audit.GENESIS,
              "row_digests": _write_row_digests(folder, run_id, digests), "at": datetime.now(UTC).isoformat(timespec="seconds")}
    if not audit.records(folder, audit.SEALS_PREFIX)[0]:
        # The first seal names the runs written before nights were sealed: verify counts those
        # without checking them, and names any other run no seal names. (Telling them apart by their
        # rows' times would let a forged run with copied times pass as one of them.)
        record["before_seals"] = [r for (r,) in con.execute(
            f"select distinct run_id from {AUDIT} where partition_date <> ? order by 1", [night]).fetchall()]
    audit.AuditLog(folder, prefix=audit.SEALS_PREFIX).append([record])
    return record


ROW_DIGEST = 8  # bytes of each row's digest kept beside the seal: enough to say which row changed (the chain proves it did)


def _write_row_digests(folder: Path, run_id: str, digests: list[str]) -> dict:
    """Each row's digest, shortened, in a file of its own beside the journal (8 bytes a row: 0.4 MB
    for a night of 48,744): what names the exact row that changed. Its SHA-256 is in the seal."""
    data = b"".join(bytes.fromhex(d[: 2 * ROW_DIGEST]) for d in digests)
    path = folder / "seal_rows" / f"{run_id}.bin"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return {"file": path.relative_to(folder).as_posix(), "sha256": hashlib.sha256(data).hexdigest()}


def unsealed(con: duckdb.DuckDBPyConnection, night: str, folder: Path | None = None) -> list[str]:
    """The runs whose audit rows of `night` no seal names yet (a sharded night's shards, each its own run)."""
    sealed = {s["run_id"] for s in audit.records(folder or audit.audit_dir(), audit.SEALS_PREFIX)[0]}
    runs = con.execute(f"select distinct run_id from {AUDIT} where partition_date = ? order by 1", [night]).fetchall()
    return [run for (run,) in runs if run not in sealed]


def due(seals: list[dict], today: date, recent: int, rotation: int) -> set[str]:
    """The sealed runs a nightly check chains again: every run of the latest `recent` sealed nights,
    and of the older nights those whose turn it is today (a night's turn comes once in `rotation`
    days, by its date), so that each is chained again at least once in `rotation` nights. Chaining
    every sealed night every night would cost about 1.2 s per 50,000 decisions: after five years of
    nights, minutes a night, for rows that do not change once sealed."""
    nights = sorted({s["night"] for s in seals})
    latest = set(nights[-recent:]) if recent else set(nights)
    turn = today.toordinal() % rotation
    return {s["run_id"] for s in seals if s["night"] in latest or date.fromisoformat(s["night"]).toordinal() % rotation == turn}


def verify(con: duckdb.DuckDBPyConnection, folder: Path | None = None, today: date | None = None, recent: int = 0,
           rotation: int = 1) -> Checked:
    """Every sealed run's rows chained again and compared with its seal (with `today`, the runs
    `due` then); runs without one named, always."""
    folder = folder or audit.audit_dir()
    seals = audit.records(folder, audit.SEALS_PREFIX)[0]
    chained = due(seals, today, recent, rotation) if today is not None else {s["run_id"] for s in seals}
    erased: dict[str, dict[int, dict]] = {}  # run -> pseudonym -> the erased row's place and digests
    for record in audit.records(folder, audit.ERASURES_PREFIX)[0]:
        for row in record.get("sealed_rows") or []:
            erased.setdefault(row["run_id"], {})[int(row["pseudonym"])] = row
    retired = {run for record in audit.records(folder, audit.RETENTION_PREFIX)[0] for night in record.get("nights") or []
               for run in night["run_ids"]}
    problems, rows, deferred = [], 0, 0
    for found in seals:
        if found["run_id"] in retired:
            continue
        if found["run_id"] not in chained:
            deferred += 1
            continue
        problem = _check(con, found, erased.get(found["run_id"], {}), folder)
        rows += found["rows"]
        if problem:
            problems.append(f"night {found['night']} (run {found['run_id']}): {problem}")
    sealed = {s["run_id"] for s in seals}
    runs = con.execute(f"select partition_date, run_id, count(*), min(scored_at) from {AUDIT} group by all order by 4, 2").fetchall() \
        if exists(con) else []
    before = 0
    for night, run_id, n, scored_at in runs:
        if run_id in sealed:
            continue
        if _before_seals(seals, run_id, scored_at):
            before += n
        else:
            problems.append(f"night {night} (run {run_id}): {n:,} rows that no seal names (inserted into the audit table, "
                            "or the night was stopped between writing and sealing: its run's log says which)")
    return Checked(len(seals) - len(sealed & retired) - deferred, rows, problems, before, len(sealed & retired), deferred)


def _before_seals(seals: list[dict], run_id: str, scored_at: datetime) -> bool:
    """Whether an unsealed run was written before nights were sealed: named by the first seal; in
    a journal an earlier release began (its first seal names none), written before that seal by
    its rows' times (which a forged copy could share: `credit-dagster audit verify` on such a home
    says how many rows it counts so)."""
    if not seals:
        return True
    if "before_seals" in seals[0]:
        return run_id in seals[0]["before_seals"]
    return scored_at < datetime.fromisoformat(seals[0]["at"]).replace(tzinfo=None, microsecond=0)


def heads(folder: Path | None = None) -> list[dict]:
    """Each sealed night's head, and each journal's as it stands: what the serving snapshot publishes."""
    nights = [{"store": "night decisions", "night": s["night"], "run_id": s["run_id"], "rows": s["rows"], "head": s["head"], "at": s["at"]}
              for s in audit.records(folder or audit.audit_dir(), audit.SEALS_PREFIX)[0]]
    journals = [{"store": name, "night": None, "run_id": None, "rows": None, "head": audit.head(where, prefix), "at": None}
                for name, (where, prefix) in audit.journals().items()]
    return nights + journals


def _check(con: duckdb.DuckDBPyConnection, found: dict, erased: dict[int, dict], folder: Path) -> str | None:
    rows = _rows(con, found["columns"], found["run_id"])
    key = found["columns"].index(ORDER)
    digests: list[str] = []
    if found.get("scheme", 1) == 1:
        if any(r[key] in erased for r in rows):
            return "rows of a night sealed before erasures kept their digests were pseudonymised: it cannot be checked"
        links = _chain(json.dumps(row, default=str, separators=(",", ":")).encode() for row in rows)
    else:
        pseudonymised = sorted((r for r in rows if r[key] in erased), key=lambda r: erased[r[key]]["index"])
        rows = [r for r in rows if r[key] not in erased]
        digests = [digest(r) for r in rows]
        for row in pseudonymised:  # back in the place it was sealed in, with the digest it was sealed with
            was = erased[row[key]]
            if digest(row) != was["now"]:
                return f"the row a person's erasure pseudonymised as {row[key]} was changed since"
            digests.insert(was["index"], was["digest"])
            rows.insert(was["index"], row)
        links = _links(digests)
    problem = _block(found, links, rows, key)
    return (_exact(found, folder, digests, rows, key) or problem) if problem and digests else problem


def _block(found: dict, links: list[str], rows: list[tuple], key: int) -> str | None:
    """Where the chain first differs from the seal, to its block of BLOCK rows."""
    block = found["block"]
    for i, kept in enumerate(found["blocks"]):
        end = (i + 1) * block
        if len(links) < end or links[end - 1] != kept:
            ids = [r[key] for r in rows[i * block : end]]
            where = f"SK_ID_CURR {ids[0]} to {ids[-1]}" if ids else "its end"
            return f"a row among rows {i * block + 1:,} to {end:,} ({where}) was edited, deleted or inserted"
    if len(links) != found["rows"]:
        return f"{found['rows']:,} rows sealed, {len(links):,} found (rows deleted or inserted after row {len(found['blocks']) * block:,})"
    if (links[-1] if links else audit.GENESIS) != found["head"]:
        start = len(found["blocks"]) * block
        return f"a row among its last rows (from row {start + 1:,}) was edited"
    return None


def _exact(found: dict, folder: Path, digests: list[str], rows: list[tuple], key: int) -> str | None:
    """The first row that differs from the sealed one, by the rows' digests kept beside the seal
    (None when the seal has none, or they were changed too: the block then says where)."""
    kept = found.get("row_digests")
    path = folder / kept["file"] if kept else None
    if path is None or not path.exists() or hashlib.sha256(data := path.read_bytes()).hexdigest() != kept["sha256"]:
        return None
    sealed = [data[i : i + ROW_DIGEST].hex() for i in range(0, len(data), ROW_DIGEST)]
    now = [d[: 2 * ROW_DIGEST] for d in digests]
    i = next((i for i, (a, b) in enumerate(zip(sealed, now, strict=False)) if a != b), min(len(sealed), len(now)))
    if i >= len(now):
        return f"the rows sealed from row {i + 1:,} on were deleted ({len(sealed) - i:,} rows)"
    if i >= len(sealed):
        return f"row {i + 1:,} (SK_ID_CURR {rows[i][key]}) and {len(now) - i - 1:,} after it were inserted after the last sealed row"
    if sealed[i + 1 : i + 2] == now[i : i + 1]:
        return f"the row sealed as row {i + 1:,} was deleted (it came before SK_ID_CURR {rows[i][key]})"
    if now[i + 1 : i + 2] == sealed[i : i + 1]:
        return f"row {i + 1:,} (SK_ID_CURR {rows[i][key]}) was inserted"
    return f"row {i + 1:,} (SK_ID_CURR {rows[i][key]}) was edited"


def _rows(con: duckdb.DuckDBPyConnection, columns: list[str], run_id: str) -> list[tuple]:
    listed = ", ".join(f'"{c}"' for c in columns)
    return con.execute(f"select {listed} from {AUDIT} where run_id = ? order by {ORDER}", [run_id]).fetchall()


def digest(row: tuple) -> str:
    """A row's SHA-256 as JSON (Python's float repr and ISO dates: the same text from any release
    reading the same values)."""
    return hashlib.sha256(_JSON.encode(row).encode()).hexdigest()


_JSON = json.JSONEncoder(default=str, separators=(",", ":"))  # json.dumps's, made once: it costs more than a row's text


def ordered(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[list[str], list[tuple]]:
    """A run's audit rows as its seal chains them: (the columns, the rows in their order)."""
    columns = sorted(r[0] for r in con.execute(f"describe {AUDIT}").fetchall())
    return columns, _rows(con, columns, run_id)


def _links(digests: list[str]) -> list[str]:
    return _chain(d.encode() for d in digests)


def _chain(parts) -> list[str]:
    """Each link the SHA-256 of the previous link and the next part."""
    link, links = audit.GENESIS, []
    for part in parts:
        link = hashlib.sha256(link.encode() + part).hexdigest()
        links.append(link)
    return links


def exists(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the warehouse has the audit table (or, with CREDIT_STORAGE=datasets, its view)."""
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = 'scoring' "
                            "and table_name = 'decision_audit'").fetchone()[0])
