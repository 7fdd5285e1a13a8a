"""The web app's costs: start-up time, and its overhead on one AdaIN stylisation.

1. ``brushwork ui`` to the page answering: the command is started as a subprocess and
   ``GET /`` is polled until it returns 200 (median of ``--starts`` runs).
2. One AdaIN stylisation (real-size AdaIN: VGG-19 to relu4_1 and its decoder, seeded
   random weights in brushwork's model-file layout; ``--size`` px content) three ways:
   the library directly (``load_image`` + the loaded stylizer + ``save_image``), the
   tab's handler in-process, and a request through the running app's HTTP API
   (``gradio_client``: uploads, queue, then the result image fetched once, as the page
   does; the download list's files are not fetched until clicked). Warm = the model already
   loaded (the app caches it per session; the direct path keeps its stylizer); cold =
   the direct path loading the model file too, against the app's first request.
3. Gradio's own floor: a do-nothing endpoint with the same two uploads and the same
   result file back; what remains of the HTTP overhead is brushwork's share.
4. In a real browser (headless Chromium through Playwright, as a user works): the two
   images uploaded once, then the time from clicking Run to the result image shown
   (the busy-button update, the queued job, the image fetched and decoded). The
   ``gradio_client`` path above pays that client's own CPU work (an SSL context per
   request, its polling threads) on the same two cores as the job; the browser does not.

``--app-cpus 0 --browser-cpus 1`` gives the app (and the direct calls it is compared
with) one core and the browser the other, as on a machine with cores to spare: what the
page costs the job apart from taking its CPU.

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
    content = noise_image(folder / "content.png", size, seed=0)
    style = folder / "style.png"
    rng = np.random.default_rng(100)
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(style)
    return model_file, content, style


def noise_image(path: Path, size: int, *, seed: int) -> Path:
    """A size × ¾size PNG of seeded noise (incompressible: the upload's worst case)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size * 3 // 4, size, 3), dtype=np.uint8)).save(path)
    return path


def direct_once(model_file: Path, content: Path, style: Path, out: Path, stylizer=None):
    from brushwork.image import load_image, save_image
    from brushwork.transfer.stylize import load_stylizer

    if stylizer is None:
        stylizer = load_stylizer(
            model_file, method="adain", styles=[load_image(style)], alpha=1.0, device="cpu"
        )
    save_image(stylizer(load_image(content)[None])[0], out)
    return stylizer


def fetch_image(answer: dict) -> bytes:
    """The result image's bytes, fetched once as the page does (the download list's
    files are fetched only when clicked, so they are not fetched here)."""
    with urllib.request.urlopen(answer["url"], timeout=30) as response:
        return response.read()


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
        client = Client(url, verbose=False, download_files=False)

        def request() -> None:
            answer = client.predict(handle_file(str(content)), [handle_file(str(style))],
                                    api_name="/nothing")  # fmt: skip
            fetch_image(answer[0])

        request()
        return statistics.median(timed(request, repeats))
    finally:
        app.close()


def pinned_browser(folder: Path, cpus: str | None) -> str | None:
    """The Chromium to launch: Debian's, under ``taskset -c cpus`` when ``cpus`` is given
    (a wrapper script in ``folder``); ``None`` when no Chromium is installed."""
    import shutil

    executable = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None
    )
    if executable is None or cpus is None:
        return executable
    wrapper = folder / "chromium-pinned"
    wrapper.write_text(f'#!/bin/sh\nexec taskset -c {cpus} {executable} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def browser_times(url: str, contents: list[Path], style: Path, model_file: Path,
                  executable: str | None):  # fmt: skip
    """Seconds from clicking Run to the result image shown, in headless Chromium
    (Playwright), one click per content image (each uploaded before its click, as a user
    does; a new content gives a new result file, which is how its arrival is seen); the
    first click loads the model and is returned apart. ``None`` when no browser can be
    started."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    # Done when the command line names this content (it comes with the result) and the
    # result image is decoded. (The random-weight network's output is the same flat
    # image for every content, so the image's address does not change.)
    shown = """name => {
        const c = document.querySelector('#transfer-command textarea, #transfer-command input');
        const i = document.querySelector('#transfer-result img');
        return c && c.value.includes(' ' + name + ' ') && i && i.complete && i.naturalWidth > 0;
    }"""
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=executable, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )  # fmt: skip
        except Exception:  # no browser on this machine
            return None
        page = browser.new_page()
        page.set_default_timeout(120_000)
        page.goto(url)
        page.locator("#transfer-styles input[type=file]").set_input_files(str(style))
        page.locator("#transfer-model").locator("textarea, input").first.fill(str(model_file))
        times = []
        for index, content in enumerate(contents):
            if index:  # the upload box is replaced by the image: remove it first
                page.locator("#transfer-content button[aria-label='Remove Image']").click()
            page.locator("#transfer-content input[type=file]").set_input_files(str(content))
            page.wait_for_timeout(1000)  # the upload finishes
            began = time.perf_counter()
            page.locator("#transfer-run").click()
            page.wait_for_function(shown, arg=content.name, polling=100)
            times.append(time.perf_counter() - began)
            page.wait_for_timeout(300)  # the Run button re-enabled
        browser.close()
    return times[0], times[1:]


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
    parser.add_argument(
        "--app-cpus",
        default=None,
        help="CPUs of this process (the app and the direct calls), e.g. 0",
    )
    parser.add_argument("--browser-cpus", default=None, help="CPUs of Chromium, e.g. 1")
    args = parser.parse_args()
    if args.app_cpus:  # before any thread starts: they inherit it
        os.sched_setaffinity(0, {int(c) for c in args.app_cpus.split(",")})
    torch.set_num_threads(min(2, len(os.sched_getaffinity(0))))

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

    # A fresh app (no model loaded), so the first click loads the model; before the
    # gradio_client requests, whose client threads outlive their calls.
    app = build_app(UISettings(model=str(sd), device="cpu"))
    server = launch(app, port=free_port(), block=False, quiet=True)
    try:
        contents = [content] + [
            noise_image(folder / f"content{k}.png", args.size, seed=k)
            for k in range(1, args.repeats + 1)
        ]
        executable = pinned_browser(folder, args.browser_cpus)
        in_browser = browser_times(server.url, contents, style, model_file, executable)
    finally:
        server.close()
    app = build_app(UISettings(model=str(sd), device="cpu"))
    server = launch(app, port=free_port(), block=False, quiet=True)
    try:
        client = Client(server.url, verbose=False, download_files=False)

        def request() -> None:
            result = client.predict(
                handle_file(str(content)), [handle_file(str(style))], "adain", str(model_file),
                "", 1.0, "", "none", 0, 200, 0, 6, str(sd), api_name="/stylize",
            )  # fmt: skip
            assert len(fetch_image(result[0])) > 1000, result

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
    if in_browser is None:
        print("(no browser could be started: the browser rows are left out)")
    else:
        cold_browser, warm_browser = in_browser
        rows += [
            ("browser, first click (loads the model)", cold_browser,
             cold_browser / cold_direct - 1),
            ("browser, warm (click Run → result shown)", median(warm_browser),
             median(warm_browser) / median(warm_direct) - 1),
        ]  # fmt: skip
    cpus = f", app on CPUs {args.app_cpus}" if args.app_cpus else ""
    cpus += f", browser on CPUs {args.browser_cpus}" if args.browser_cpus else ""
    print(f"AdaIN (real size, random weights), content {args.size} px long side, CPU, "
          f"{torch.get_num_threads()} threads{cpus}, medians of {args.repeats}")  # fmt: skip
    print(f"{'what':48} {'seconds':>8} {'overhead':>9}")
    for name, seconds, overhead in rows:
        extra = f"{overhead * 100:+8.1f}%" if overhead is not None else ""
        print(f"{name:48} {seconds:8.3f} {extra:>9}")
    if args.json:
        data = [{"what": n, "seconds": s, "overhead": o} for n, s, o in rows]
        args.json.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
