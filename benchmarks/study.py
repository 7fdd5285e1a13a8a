"""Cost of the content/style study's bookkeeping: metric pass, store, resume.

1. Metric pass for one prompt: W word maps at image size (default 10 words at 1024²,
   from smooth 64² maps upsampled bicubically and normalised, as in a real run), masks at
   all thresholds × both modes and every word pair — the vectorised pass
   (:func:`brushwork.experiments.metrics.prompt_metrics`) against a plain per-pair loop
   like the original's (:func:`~brushwork.experiments.metrics.loop_metrics`: a quantile
   per map and pair). The loop is timed on ``--loop-levels`` thresholds and scaled to all
   nine (it takes minutes per prompt); ``--loop-levels 9`` times it in full.
2. Store throughput: rows per second written through ``StudyStore.write_batch`` (one
   transaction per batch), for the 36 rows of a prompt with both rules.
3. Resume overhead: opening a 16,000-prompt store, checking its settings and grid and
   listing the pending prompts (half of them done).

    python benchmarks/study.py                       # 1024², 10 words
    python benchmarks/study.py --size 512 --repeats 5 --json study.json
    python benchmarks/study.py --device cuda         # metric pass on a GPU

Target: metric pass ≤ 0.1 s per prompt on CPU, so metrics never bound a GPU run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _maps(words: int, size: int, device: str) -> torch.Tensor:
    from brushwork.experiments.metrics import word_heatmaps

    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(words + 1, 8, 8, generator=generator)
    token_maps = torch.nn.functional.interpolate(coarse[None], size=(64, 64), mode="bicubic")[0]
    token_maps = token_maps.clamp(min=0)
    positions = [[i + 1] for i in range(words)]
    return word_heatmaps(token_maps.to(device), positions, (size, size))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_metrics(args: argparse.Namespace) -> dict:
    from brushwork.experiments.metrics import THRESHOLDS, loop_metrics, prompt_metrics

    maps = _maps(args.words, args.size, args.device)
    content, style = 4, 7 % args.words
    prompt_metrics(maps, content, style)  # warm-up
    times = []
    for _ in range(args.repeats):
        _sync(args.device)
        start = time.perf_counter()
        prompt_metrics(maps, content, style)
        _sync(args.device)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    _maps(args.words, args.size, args.device)
    _sync(args.device)
    upsample = time.perf_counter() - start
    levels = THRESHOLDS[: args.loop_levels]
    array = maps.cpu().numpy()
    start = time.perf_counter()
    loop_metrics(array, content, style, thresholds=levels)
    loop = (time.perf_counter() - start) * len(THRESHOLDS) / len(levels)
    pairs = args.words * (args.words - 1) // 2
    return {
        "words": args.words,
        "size": args.size,
        "device": args.device,
        "pairs": pairs,
        "iou_evaluations": 2 * len(THRESHOLDS) * (pairs + 1),
        "vectorised_s": statistics.median(times),
        "vectorised_min_s": min(times),
        "maps_to_image_size_s": upsample,
        "loop_s": loop,
        "loop_scaled_from_levels": len(levels),
        "speedup": loop / statistics.median(times),
    }


def bench_store(args: argparse.Namespace) -> dict:
    from brushwork.experiments.grid import build_grid
    from brushwork.experiments.metrics import METRIC_COLUMNS, MODES, THRESHOLDS
    from brushwork.experiments.store import StudyStore

    grid = build_grid()
    settings = {"model": "benchmark", "steps": 30, "versions": {"torch": torch.__version__}}
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        with StudyStore(folder) as store:
            store.create_or_check(grid, settings)
        create = time.perf_counter() - start
        values = dict.fromkeys(METRIC_COLUMNS, 0.5)
        prompts = args.store_prompts
        start = time.perf_counter()
        with StudyStore(folder) as store:
            for first in range(0, prompts, args.store_batch):
                batch = range(first, min(first + args.store_batch, prompts))
                rows = [
                    {"prompt_index": i, "rule": rule, "mode": mode, "threshold": t, **values}
                    for i in batch
                    for rule in ("first", "mean")
                    for mode in MODES
                    for t in THRESHOLDS
                ]
                store.write_batch(rows, dict.fromkeys(batch, 1.0))
        written = time.perf_counter() - start
        rows_written = prompts * 2 * len(MODES) * len(THRESHOLDS)
        with StudyStore(folder) as store:  # half of the grid done, for the resume timing
            rows = [
                {"prompt_index": i, "rule": "first", "mode": "fixed", "threshold": 0.1, **values}
                for i in range(prompts, len(grid) // 2)
            ]
            store.write_batch(rows, dict.fromkeys(range(prompts, len(grid) // 2), 1.0))
        start = time.perf_counter()
        regrid = build_grid()
        with StudyStore(folder) as store:
            store.create_or_check(regrid, settings)
            pending = store.pending()
        resume = time.perf_counter() - start
        size = (Path(folder) / "study.sqlite").stat().st_size
    return {
        "create_16000_s": create,
        "rows_written": rows_written,
        "rows_per_s": rows_written / written,
        "prompts_per_s": prompts / written,
        "batch_prompts": args.store_batch,
        "resume_s": resume,
        "resume_pending": len(pending),
        "db_mb": size / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="image side (%(default)s)")
    parser.add_argument("--words", type=int, default=10, help="words per prompt (%(default)s)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--loop-levels", type=int, default=1, help="thresholds to time the loop on (1..9)"
    )
    parser.add_argument("--store-prompts", type=int, default=2000)
    parser.add_argument("--store-batch", type=int, default=4)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    metrics = bench_metrics(args)
    store = bench_store(args)
    print(f"metric pass, one prompt: {metrics['words']} words, {metrics['size']}², "
          f"{metrics['pairs']} pairs, 9 thresholds × 2 modes, {metrics['device']}")  # fmt: skip
    print(f"  {'vectorised (median)':<34}{metrics['vectorised_s']:>10.3f} s")
    print(f"  {'vectorised (best)':<34}{metrics['vectorised_min_s']:>10.3f} s")
    print(f"  {'maps to image size (upsample)':<34}{metrics['maps_to_image_size_s']:>10.3f} s")
    scaled = metrics["loop_scaled_from_levels"]
    print(f"  {f'per-pair loop (from {scaled}/9 levels)':<34}{metrics['loop_s']:>10.1f} s")
    print(f"  {'speed-up':<34}{metrics['speedup']:>10.0f} ×")
    print("store (SQLite, WAL)")
    print(f"  {'create 16,000-prompt grid':<34}{store['create_16000_s']:>10.3f} s")
    print(f"  {'rows/s (batches of ' + str(store['batch_prompts']) + ' prompts)':<34}"
          f"{store['rows_per_s']:>10.0f}")  # fmt: skip
    print(f"  {'prompts/s stored':<34}{store['prompts_per_s']:>10.0f}")
    print(f"  {'resume (check + pending of 16,000)':<34}{store['resume_s']:>10.3f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"metrics": metrics, "store": store}, indent=2))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
