"""Wall time of the README's main job, ``varbench speed --quick``, on this machine (issue 6 benchmark).

    python benchmarks/bench_speed.py [--runs 2] [--json reports/bench_speed_quick.json]

Runs the command as a user would (a subprocess, the installed ``varbench`` entry point), ``--runs`` times, and
records the wall time of each run, the load average before and after (the machine may be shared), whether the latency
order var_kv < raster_kv < raster_nokv held at batch 1 at every resolution, and the fitted exponents.  The target is
under two minutes on two CPU cores while other work runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from varbench import env, files  # noqa: E402

COMMAND = ["varbench", "speed", "--quick"]


def one_run(workdir: Path, index: int) -> dict:
    out, png = workdir / f"quick_{index}.json", workdir / f"quick_{index}.png"
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run([*COMMAND, "--json", str(out), "--plot", str(png)], capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(COMMAND)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    res = json.loads(out.read_text())["results"]
    latency = [o for o in res["ordering"] if o["batch_size"] == 1]
    return {
        "wall_s": wall,
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "latency_order_holds": all(o["holds"] for o in latency) and len(latency) > 0,
        "ordering": res["ordering"],
        "time_exponents": {f"{f['mode']} b{f['batch_size']}": [f["exponent"], f["ci_low"], f["ci_high"]]
                           for f in res["fits"] if f["quantity"] == "time"},
        "png_bytes": png.stat().st_size,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--json", default="reports/bench_speed_quick.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_run(Path(tmp), i) for i in range(args.runs)]
    walls = sorted(r["wall_s"] for r in runs)
    result = {
        "benchmark": "varbench speed --quick (width 256, depth 4, 96/128/160 px, batch 1 and 2, fp32, 1 thread)",
        "command": " ".join(COMMAND),
        "runs": runs,
        "wall_s_median": statistics.median(walls),
        "wall_s_max": walls[-1],
        "under_2_minutes": walls[-1] < 120,
        "latency_order_always_held": all(r["latency_order_holds"] for r in runs),
        "env": env.collect("cpu"),
    }
    files.write_json(args.json, result)
    print(json.dumps({k: result[k] for k in ("wall_s_median", "wall_s_max", "under_2_minutes",
                                             "latency_order_always_held")}, indent=2))


if __name__ == "__main__":
    main()
