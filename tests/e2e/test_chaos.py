"""`make chaos`'s short version: the same harness with fewer workloads and rollouts and one
fault of each kind, on a cluster of its own (its API server is restarted, its etcd frozen).
A new seed each run, printed for replay: `make chaos PROFILE=short SEED=n`."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from chaos import faults

ROOT = Path(__file__).resolve().parents[2]


def test_short_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(10**6))
    out = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "chaos", *("--profile", "short", "--seed", str(seed)), "--out", out],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    replay = f"make chaos PROFILE=short SEED={seed}\n{run.stdout}\n{run.stderr[-6000:]}"
    assert out.exists(), replay
    results = json.loads(out.read_text())
    assert results["faults"]["injected"] == {kind: 1 for kind in faults.KINDS}, replay
    assert results["rollouts"]["done"] == results["rollouts"]["target"] == 30, replay
    assert results["edits"] > 0, replay
    assert results["admissions"].get("pinned", 0) > 0, replay
    found = {
        name: invariant
        for name, invariant in results["invariants"].items()
        if invariant["violations"]
    }
    assert found == {}, replay
    assert len(results["invariants"]) == 6, replay
    assert run.returncode == 0, replay
