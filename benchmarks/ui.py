"""The web app's costs: start-up time, and its overhead on one AdaIN stylisation.

1. ``brushwork ui`` to the page answering: the command is started as a subprocess and
   ``GET /`` is polled until it returns 200 (median of ``--starts`` runs).
2. One AdaIN stylisation (real-size AdaIN: VGG-19 to relu4_1 and its decoder, seeded
   random weights in brushwork's model-file layout; ``--size`` px content) three ways:
   the library directly (``load_image`` + the loaded stylizer + ``save_image``), the
   tab's handler in-process, and a request through the running app's HTTP API
   (``gradio_client``: uploads, queue, result file back). Warm = the model already
   loaded (the app caches it per session; the direct path keeps its stylizer); cold =
   the direct path loading the model file too, against the app's first request.
3. Gradio's own floor: a do-nothing endpoint with the same two uploads and the same
   result file back; what remains of the HTTP overhead is brushwork's share.

Run under ``flock /work/notes/bench.lock python benchmarks/ui.py`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, timeout: float = 120.0) -> float:
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - began
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def startup_seconds(model: str) -> float:
    port = free_port()
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "brushwork.cli.main", "ui", "--port", str(port), "--model", model,
         "--device", "cpu", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/")
        return time.perf_counter() - began
    finally:
        process.terminate()
        process.wait(timeout=30)


def make_files(folder: Path, size: int) -> tuple[Path, Path, Path]:
    import numpy as np
    from PIL import Image

    from brushwork.transfer.adain import AdaINModel
    from brushwork.transfer.johnson import reinitialise
    from brushwork.transfer.modelfile import save_model

    model = AdaINModel()
    reinitialise(model, torch.Generator().manual_seed(0))
    model_file = save_model(folder / "adain.safetensors", model.eval())
    rng = np.random.default_rng(0)
    height = size * 3 // 4
    content = folder / "content.png"
    style = folder / "style.png"
    Image.fromarray(rng.integers(0, 255, (height, size, 3), dtype=np.uint8)).save(content)
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(style)
    return model_file, content, style


def direct_once(model_file: Path, content: Path, style: Path, out: Path, stylizer=None):
    from brushwork.image import load_image, save_image
    from brushwork.transfer.stylize import load_stylizer

    if stylizer is None:
        stylizer = load_stylizer(
            model_file, method="adain", styles=[load_image(style)], alpha=1.0, device="cpu"
        )
    save_image(stylizer(load_image(content)[None])[0], out)
    return stylizer


def gradio_floor(content: Path, style: Path, result: Path, repeats: int) -> float:
    """Median seconds of a request that does nothing through Gradio's queue with the same
    uploads and the same result file back: the fixed cost of any job over HTTP."""
    import gradio as gr
    from gradio_client import Client, handle_file

    def nothing(content_path, style_paths):
        return str(result), "done"

    with gr.Blocks() as app:
        inputs = [gr.Image(type="filepath"), gr.File(file_count="multiple")]
        outputs = [gr.Image(type="filepath"), gr.Markdown()]
        gr.Button().click(nothing, inputs, outputs, api_name="nothing")
    app.queue()
    _, url, _ = app.launch(prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False)

        def request() -> None:
            client.predict(handle_file(str(content)), [handle_file(str(style))],
                           api_name="/nothing")  # fmt: skip

        request()
        return statistics.median(timed(request, repeats))
    finally:
        app.close()


def timed(call, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="content long side")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))

    from gradio_client import Client, handle_file

    from brushwork.ui import transfer
    from brushwork.ui.app import build_app, launch
    from brushwork.ui.common import Session, UISettings, finish

    folder = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    model_file, content, style = make_files(folder, args.size)
    sd = folder / "no-model-loaded"  # start-up loads no model: any folder name will do
    sd.mkdir()
    starts = [startup_seconds(str(sd)) for _ in range(args.starts)]

    out = folder / "direct.png"
    cold_direct = timed(lambda: direct_once(model_file, content, style, out), 1)[0]
    stylizer = direct_once(model_file, content, style, out)
    warm_direct = timed(lambda: direct_once(model_file, content, style, out, stylizer),
                        args.repeats)  # fmt: skip

    session = Session(UISettings(device="cpu"))

    def handler() -> None:
        finish(transfer.stylize(session, str(content), [str(style)], "adain", str(model_file)))

    warm_handler = timed(handler, args.repeats + 1)[1:]  # the first one loads

    app = build_app(UISettings(model=str(sd), device="cpu"))
    server = launch(app, port=free_port(), block=False, quiet=True)
    try:
        client = Client(server.url, verbose=False)

        def request() -> None:
            result = client.predict(
                handle_file(str(content)), [handle_file(str(style))], "adain", str(model_file),
                "", 1.0, "", "none", 0, 200, 0, 6, str(sd), api_name="/stylize",
            )  # fmt: skip
            assert Path(result[0]).is_file(), result

        cold_http = timed(request, 1)[0]
        warm_http = timed(request, args.repeats)
    finally:
        server.close()

    floor = gradio_floor(content, style, out, args.repeats)
    median = statistics.median
    rows = [
        ("brushwork ui → page answers", median(starts), None),
        ("direct, cold (load model + stylise + save)", cold_direct, None),
        ("app, first request (HTTP, loads the model)", cold_http, cold_http / cold_direct - 1),
        ("direct, warm (stylise + save)", median(warm_direct), None),
        ("handler in-process, warm", median(warm_handler),
         median(warm_handler) / median(warm_direct) - 1),
        ("app over HTTP, warm", median(warm_http), median(warm_http) / median(warm_direct) - 1),
        ("  Gradio alone (same uploads, no work)", floor, floor / median(warm_direct)),
        ("  brushwork's share over HTTP", median(warm_http) - median(warm_direct) - floor,
         (median(warm_http) - median(warm_direct) - floor) / median(warm_direct)),
    ]  # fmt: skip
    print(f"AdaIN (real size, random weights), content {args.size} px long side, CPU, "
          f"{torch.get_num_threads()} threads, medians of {args.repeats}")  # fmt: skip
    print(f"{'what':48} {'seconds':>8} {'overhead':>9}")
    for name, seconds, overhead in rows:
        extra = f"{overhead * 100:+8.1f}%" if overhead is not None else ""
        print(f"{name:48} {seconds:8.3f} {extra:>9}")
    if args.json:
        data = [{"what": n, "seconds": s, "overhead": o} for n, s, o in rows]
        args.json.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
