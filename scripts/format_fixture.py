"""Write the small home of a past release that the upgrade tests open.

Each change of a store's format (`credit_dagster/core/formats.py`) ships its migration and a test
that opens a home written by the release before it. This script makes that home with the release
itself: it checks the release's commit out in a temporary git worktree, runs that release's own
`credit-dagster synth` and `credit-dagster run` (a tiny SYNTHETIC set: training, a champion, a
scored night, the serving snapshot), then packs the home as the release left it, without what a
backup would not carry either (reports, the Dagster instance, the inbox, locks, the data folder's
path), into an xz tarball under 1 MB, with FIXTURE.txt saying how it was made.

    python scripts/format_fixture.py 7431cf3 credit_dagster_tests/fixtures/home_format_0.tar.xz

The release runs on this checkout's virtualenv (its pinned dependencies must still install it).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

LIMIT = 1_000_000  # bytes: the fixture lives in the repository
LEFT_OUT = {"reports", "dagster", "inbox", "data_dir.txt", "duckdb_tmp"}


def make(commit: str, out: Path) -> int:
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        tree, home, data = Path(tmp) / "release", Path(tmp) / "home", Path(tmp) / "synthetic"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), commit], check=True, capture_output=True)
        try:
            # the release's own code first on the path (`-m` puts the working folder first); tiny data learns
            # little, so the AUC floor is lifted
            env = {**os.environ, "PYTHONPATH": str(tree), "CREDIT_HOME": str(home), "CREDIT_MIN_AUC": "0"}
            env.pop("CREDIT_DATA_DIR", None)
            cli = [sys.executable, "-m", "credit_dagster.cli"]
            subprocess.run([*cli, "synth", "--scale", "0.001", "--seed", "42", "--out", str(data), "--quiet"], env=env, cwd=tree, check=True)
            subprocess.run([*cli, "run", "--data-dir", str(data)], env=env, cwd=tree, check=True, capture_output=True)
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], check=True)
        full = subprocess.run(["git", "-C", str(repo), "rev-parse", commit], check=True, capture_output=True, text=True).stdout.strip()
        note = (f"A CREDIT_HOME written by credit-dagster at commit {full}, made {datetime.now(UTC):%Y-%m-%d} by\n"
                f"`python scripts/format_fixture.py {commit} {out.name}`: that release's `synth --scale 0.001 --seed 42`\n"
                "and `run` (CREDIT_MIN_AUC=0). SYNTHETIC data.\n").encode()
        out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(out, "w:xz", preset=9) as tar:
            info = tarfile.TarInfo("FIXTURE.txt")
            info.size = len(note)
            tar.addfile(info, io.BytesIO(note))
            for path in sorted(home.iterdir()):
                if path.name not in LEFT_OUT and not path.name.endswith(".lock"):
                    tar.add(path, arcname=path.name)
    size = out.stat().st_size
    print(f"{out}: {size:,} bytes")
    if size > LIMIT:
        out.unlink()
        raise SystemExit(f"the fixture would weigh {size:,} bytes, over {LIMIT:,}: make the release's home smaller")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    sys.exit(make(sys.argv[1], Path(sys.argv[2])))
