"""Load on the scoring API over loopback: stored decisions by id, single on-demand scores, one batch.

Starts `credit-dagster api` on a scored CREDIT_HOME (a `credit-dagster run` beforehand), sends
requests at a fixed rate (open loop: a slow answer does not slow the sender down, so queueing
shows in the latency) and prints p50/p95/p99, errors and the achieved rate.

    CREDIT_HOME=/tmp/bench_home python bench/api_load.py --by-id-rate 200 --seconds 30
    CREDIT_HOME=/tmp/bench_home python bench/api_load.py --by-id-rate 1000 --score-rate 0 --batch 0

Stored decisions are asked over plain keep-alive sockets (httpx's client costs about a millisecond
of CPU a request, too much to send 1,000 a second from one core); each latency runs from the
moment the request was due, so a sender that falls behind shows in it, and `late_p99_ms` says
by how much the sender itself was late.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import httpx
import numpy as np

import credit_dagster
from credit_dagster.api import keys
from credit_dagster.core import settings, snapshot
from credit_dagster.core.sources import SOURCE_TABLES
from credit_dagster.decision import ondemand
from credit_dagster.ingest.loaders import find_source_file
from credit_dagster.nightly import drops


def applications(limit: int) -> list[dict]:
    """Application rows of the inbox's drops, as JSON objects (ids made unique past the drop's)."""
    con = duckdb.connect()
    rows = []
    for folder in sorted(drops.inbox_dir().iterdir()):
        spec = SOURCE_TABLES[ondemand.APPLICATION]
        path = find_source_file(folder, spec)
        columns = "{" + ", ".join(f"'{c}': '{t}'" for c, t in spec.columns.items()) + "}"
        frame = ondemand.typed(ondemand.APPLICATION, con.execute(
            f"select * from read_csv('{path}', header = true, auto_detect = false, columns = {columns})").df())
        rows += json.loads(frame.to_json(orient="records"))
    # beyond the drops' applicants, copies under new ids (scored without history)
    return [rows[i] if i < len(rows) else dict(rows[i % len(rows)], SK_ID_CURR=900_000_000 + i) for i in range(limit)]


async def open_loop(client: httpx.AsyncClient, rate: float, seconds: float, make) -> dict:
    latencies, statuses, tasks = [], [], []

    async def one(i: int):
        method, url, body = make(i)
        started = time.perf_counter()
        try:
            response = await client.request(method, url, json=body)
            statuses.append(response.status_code)
        except httpx.HTTPError as exc:
            statuses.append(type(exc).__name__)
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return summary(latencies, statuses, time.perf_counter() - started)


def summary(latencies: list[float], statuses: list, elapsed: float, late: list[float] | None = None) -> dict:
    ms = np.array(latencies) * 1000
    said = {"requests": len(ms), "rate_achieved": round(len(ms) / elapsed, 1), "errors": sum(s != 200 for s in statuses),
            "p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 1)}
    failed = Counter(str(s) for s in statuses if s != 200)  # each status or exception, to tell a 422 from a 5xx or a reset
    return said | ({"late_p99_ms": round(float(np.percentile(np.array(late) * 1000, 99)), 2)} if late else {}) \
        | ({"error_kinds": dict(failed)} if failed else {})


async def open_loop_get(port: int, key: str, rate: float, seconds: float, paths: list[str]) -> dict:
    """GET `paths` in turn at `rate` a second over keep-alive sockets, a new one whenever none is idle."""
    idle, latencies, statuses, late, tasks = [], [], [], [], []

    async def one(i: int, due: float):
        late.append(time.perf_counter() - due)
        reused = bool(idle)
        while True:
            reader, writer = idle.pop() if reused else await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(f"GET {paths[i % len(paths)]} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1)))
                statuses.append(int(head.split(b" ", 2)[1]))
                idle.append((reader, writer))
            except asyncio.IncompleteReadError as exc:
                writer.close()
                if reused and not exc.partial:  # the server closed a connection idle past its keep-alive: asked again, as any client does
                    reused = False
                    continue
                statuses.append(type(exc).__name__)
            except (OSError, AttributeError) as exc:
                statuses.append(type(exc).__name__)
                writer.close()
            break
        latencies.append(time.perf_counter() - due)

    started = time.perf_counter()
    for i in range(int(rate * seconds)):
        due = started + i / rate
        if due > time.perf_counter():
            await asyncio.sleep(due - time.perf_counter())
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    for _, writer in idle:
        writer.close()
    return summary(latencies, statuses, elapsed, late)


async def main(args: argparse.Namespace) -> None:
    key = keys.create(f"bench-{os.getpid()}", rate_per_second=10_000, scopes=keys.SCOPES)
    env = {**os.environ, "CREDIT_API_MAX_BATCH": str(max(1000, args.batch))}
    # started in the checkout this script imports from: `python -m` puts the working directory
    # first on the path, so a server started elsewhere could run other code than PYTHONPATH names
    server = subprocess.Popen([sys.executable, "-m", "credit_dagster.cli", "api", "--port", str(args.port)], env=env,
                              cwd=Path(credit_dagster.__file__).parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{args.port}"
    try:
        async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=60,
                                     limits=httpx.Limits(max_connections=200)) as client:
            for _ in range(100):
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
            with duckdb.connect(str(snapshot.snapshot_path()), read_only=True) as con:
                ids = [r[0] for r in con.execute("select SK_ID_CURR from scored_applications").fetchall()]
            apps = applications(max(args.batch, 200))
            print(f"CREDIT_HOME {settings.credit_home()}: {len(ids)} stored decisions; {settings.threads()} threads")
            await client.get(f"/v1/decisions/{ids[0]}")
            await client.post("/v1/score", json={"application": apps[0]})
            if args.by_id_rate:
                by_id = await open_loop_get(args.port, key, args.by_id_rate, args.seconds, [f"/v1/decisions/{i}" for i in ids])
                print("by id          ", by_id)
            if args.score_rate:
                single = await open_loop(client, args.score_rate, args.seconds,
                                         lambda i: ("POST", "/v1/score", {"application": apps[i % len(apps)], "on_unknown_category": "as_missing"}))
                print("on-demand one  ", single)
            if args.batch:
                started = time.perf_counter()
                response = await client.post("/v1/score/batch", json={"applications": [{"application": a} for a in apps[: args.batch]],
                                                                       "on_unknown_category": "as_missing"})
                print(f"batch of {args.batch}: status {response.status_code} in {time.perf_counter() - started:.2f}s")
    finally:
        server.terminate()
        server.wait(10)
        keys.revoke(f"bench-{os.getpid()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--by-id-rate", type=float, default=200)
    parser.add_argument("--score-rate", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--port", type=int, default=8799)
    asyncio.run(main(parser.parse_args()))
