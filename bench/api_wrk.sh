#!/usr/bin/env bash
# Stored decisions under wrk (closed loop: C connections as fast as answers come), beside the
# server's own /health rate, on a scored CREDIT_HOME:
#   CREDIT_HOME=/tmp/apib/home bash bench/api_wrk.sh [CHECKOUT] [CONNECTIONS...]
# CHECKOUT (default: this one) is the code the API runs, for before/after in one session.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
code="${1:-$here}"; shift || true
connections=("${@:-16 64}")
python="$here/.venv/bin/python"
port=$(( 20000 + RANDOM % 20000 ))
work="$(mktemp -d)"
trap 'kill "$api" 2>/dev/null || true; wait "$api" 2>/dev/null || true; rm -rf "$work"' EXIT
"$python" - "$work" <<'PY'
import sys, duckdb
from pathlib import Path
from credit_dagster.api import keys
from credit_dagster.core import snapshot
with duckdb.connect(str(snapshot.snapshot_path()), read_only=True) as con:
    ids = [r[0] for r in con.execute("select distinct SK_ID_CURR from scored_applications order by 1").fetchall()]
Path(sys.argv[1], "ids").write_text("\n".join(map(str, ids)) + "\n")
Path(sys.argv[1], "key").write_text(keys.create(f"wrk-{Path(sys.argv[1]).name}", rate_per_second=1e6, scopes=(keys.READ_DECISIONS,)))
PY
(cd "$code" && exec "$python" -m credit_dagster.cli api --port "$port" > "$work/api.log" 2>&1) & api=$!
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/ready" > /dev/null && break; sleep 1; done
echo "code: $(git -C "$code" log --oneline -1)"
echo "ids: $(wc -l < "$work/ids") stored decisions"
for c in ${connections[@]}; do
  wrk -t2 -c"$c" -d10s http://127.0.0.1:$port/health > /dev/null  # warm-up
  echo "--- /health, $c connections"; wrk -t2 -c"$c" -d20s --latency "http://127.0.0.1:$port/health" | grep -E "Requests/sec|50%|99%"
  echo "--- GET /v1/decisions/{id}, $c connections"
  wrk -t2 -c"$c" -d20s --latency -s "$here/bench/by_id.lua" "http://127.0.0.1:$port" -- "$(cat "$work/key")" "$work/ids" \
    | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors"
done
