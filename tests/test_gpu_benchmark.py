"""benchmarks/gpu.py --dry-run: every section runs on CPU at a tiny size, so it does not rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def test_gpu_script_dry_run_runs_every_section(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--budget-scale", "20", "--json", str(out)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["dry_run"] and set(result["sections"].values()) == {"ok"}
    figures = {row["figure"]: row["value"] for row in result["rows"]}
    for name in ("gatys-512", "gatys-1024"):
        assert figures[f"{name} textbook loop (s)"] > 0
    for name in ("johnson", "adain", "wct"):
        assert figures[f"{name} 32 px (s)"] > 0
    assert figures["study prompts/s with recording"] > 0
    assert "DAAM recording overhead (%)" in figures and "target" in done.stdout
