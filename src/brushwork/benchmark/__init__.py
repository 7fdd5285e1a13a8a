"""One benchmark of every style-transfer method on the same inputs (``brushwork benchmark``).

* :mod:`.protocol` — the inputs: a named protocol's file lists (``styleid-20x40``) or the
  user's folders;
* :mod:`.methods` — the registry: a method spec (``johnson:starry.safetensors``) -> the
  library call with its documented defaults;
* :mod:`.runner` — one job per (method, content, style), fixed seed, resumable
  (:mod:`.store`, SQLite), local or Ray; :mod:`.measure`: seconds, peak memory, versions;
* :mod:`.scoring` — the metrics of ``brushwork evaluate`` by name;
* :mod:`.tables`, :mod:`.figures`, :mod:`.report` — CSV, JSON and the HTML report, and
  the paired comparison of two benchmark folders.

Example::

    from brushwork.benchmark import (BenchmarkSettings, BenchmarkStore, MethodSettings,
                                     folder_inputs, parse_methods, prepare, run_benchmark,
                                     write_report)

    inputs = folder_inputs("contents/", "styles/")
    settings = BenchmarkSettings(parse_methods("adain,wct:wct.safetensors"),
                                 MethodSettings(size=512, seed=0), metrics=("ssim", "lpips"))
    plan = prepare(settings, inputs)
    with BenchmarkStore("bench/") as store:
        summary = run_benchmark(store, settings, inputs, plan)
    write_report(["bench/"], "bench/report.html")
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the submodule that defines it, imported on first use (so that the
#: command line's parser and ``methods.METHODS`` load without torch).
_WHERE = {
    "METHODS": "methods",
    "MethodSettings": "methods",
    "MethodSpec": "methods",
    "parse_methods": "methods",
    "PROTOCOLS": "protocol",
    "folder_inputs": "protocol",
    "protocol_inputs": "protocol",
    "write_report": "report",
    "BenchmarkSettings": "runner",
    "RunSummary": "runner",
    "prepare": "runner",
    "run_benchmark": "runner",
    "BenchmarkStore": "store",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'brushwork.benchmark' has no attribute '{name}'")
    return getattr(importlib.import_module(f"brushwork.benchmark.{_WHERE[name]}"), name)


__all__ = [
    "METHODS",
    "PROTOCOLS",
    "BenchmarkSettings",
    "BenchmarkStore",
    "MethodSettings",
    "MethodSpec",
    "RunSummary",
    "folder_inputs",
    "parse_methods",
    "prepare",
    "protocol_inputs",
    "run_benchmark",
    "write_report",
]
