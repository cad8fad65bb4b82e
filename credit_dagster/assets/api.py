"""The scoring API's audit trail, folded into the warehouse.

The API appends each on-demand decision to its own files (it never opens the warehouse); this
asset copies the records not yet folded into scoring.ondemand_audit, keyed by decision id, so
it can run any number of times and after any crash.
"""

import dagster as dg

from credit_dagster import partitions, scoring
from credit_dagster.api import audit
from credit_dagster.assets.ingest import POOL
from credit_dagster.resources import Warehouse

ONDEMAND_AUDIT = dg.AssetKey(["scoring", "ondemand_audit"])
COLUMNS = {**scoring.DECISION_COLUMNS, "caller": "varchar", "history_source": "varchar"}


@dg.asset(key=ONDEMAND_AUDIT, group_name="api", pool=POOL, kinds={"duckdb"})
def ondemand_audit(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Every decision the scoring API gave (model version, threshold, calibration, feature
    fingerprint, time, caller), from the API's append-only files under CREDIT_HOME/api/audit.
    `run_id` holds the API's decision id."""
    records, problems = audit.read()
    for problem in problems:
        context.log.warning(f"unreadable audit line (a write cut short; that answer was never sent): {problem}")
    with warehouse.connect() as con:
        con.execute("create schema if not exists scoring")
        partitions.create_or_extend(con, "scoring.ondemand_audit", COLUMNS)
        added = 0
        if len(records):
            con.register("records_df", records.reindex(columns=list(COLUMNS)))
            before = con.execute("select count(*) from scoring.ondemand_audit").fetchall()[0][0]
            con.execute("""insert into scoring.ondemand_audit by name
                           select * from records_df where run_id not in (select run_id from scoring.ondemand_audit)""")
            added = con.execute("select count(*) from scoring.ondemand_audit").fetchall()[0][0] - before
        total = con.execute("select count(*) from scoring.ondemand_audit").fetchall()[0][0]
    return dg.MaterializeResult(metadata={"dagster/row_count": total, "added": added, "unreadable_lines": problems[:20],
                                          "folder": dg.MetadataValue.path(str(audit.audit_dir()))})
