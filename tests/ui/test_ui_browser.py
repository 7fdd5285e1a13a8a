"""End to end in a real browser: the app on a free localhost port, driven by Playwright
on headless Chromium (Debian's, or Playwright's own when installed).

Screenshots of every tab go to ``$BRUSHWORK_UI_ARTEFACTS`` (default: a pytest temp
folder, printed). These tests skip, saying why, only when no browser can be started.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need Playwright: pip install playwright"
)

#: Flags for Chromium on a machine without network (background services stay off).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000
#: The camera the page sees: Chromium's fake capture device playing WEBCAM_FILE.
CAMERA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
#: The fake camera's frame (width, height): a size no other test picture has.
WEBCAM_SIZE = (64, 48)


def write_y4m(path: Path, width: int, height: int, frames: int = 2) -> Path:
    """A YUV4MPEG2 clip (I420) of a left-to-right luminance ramp: bright on the right,
    so a mirrored capture is told apart from a plain one."""
    import numpy as np

    ramp = np.linspace(30, 220, width).astype(np.uint8)
    luma = np.tile(ramp, (height, 1))
    chroma = np.full((height // 2, width // 2), 128, np.uint8)
    frame = b"FRAME\n" + luma.tobytes() + chroma.tobytes() + chroma.tobytes()
    header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + frame * frames)
    return path


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, sd_folder):
    from brushwork.ui.app import build_app, launch
    from brushwork.ui.common import UISettings

    app = build_app(UISettings(model=str(sd_folder), device="cpu", precision="fp32"))
    running = launch(app, port=_free_port(), block=False, quiet=True)
    yield running
    running.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    executable = _chromium()
    camera = write_y4m(tmp_path_factory.mktemp("camera") / "camera.y4m", *WEBCAM_SIZE)
    camera_args = [*CAMERA_ARGS, f"--use-file-for-fake-video-capture={camera}"]
    with playwright_api.sync_playwright() as playwright:
        try:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-profile")),
                executable_path=executable,
                headless=True,
                args=[*CHROMIUM_ARGS, *camera_args],
                permissions=["camera"],
                viewport={"width": 1280, "height": 1000},
            )
        except Exception as error:  # no browser on this machine
            pytest.skip(
                f"no browser could be started (install Debian's chromium, as .ci/run does): "
                f"{str(error).splitlines()[0]}"
            )
        yield context
        context.close()


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("BRUSHWORK_UI_ARTEFACTS") or tmp_path_factory.mktemp("ui-shots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"UI screenshots: {folder}")
    return folder


@pytest.fixture
def page(browser, server):
    """A fresh page on the app; fails the test if it asked anything of another host."""
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    outside: list[str] = []
    page.on(
        "request",
        lambda request: (
            outside.append(request.url)
            if not request.url.startswith((server.url.rstrip("/"), "data:", "blob:"))
            else None
        ),
    )
    page.goto(server.url)
    page.wait_for_selector("#tab-transfer", state="attached")
    yield page
    page.close()
    assert not outside, f"the page asked other hosts: {outside[:5]}"


def _fill(page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id}").locator("textarea, input").first.fill(text)


def _open_tab(page, title: str) -> None:
    page.get_by_role("tab", name=title).click()


def test_adain_in_the_browser(page, pictures, adain_file, artefacts):
    page.locator("#transfer-content input[type=file]").set_input_files(str(pictures["content"]))
    page.locator("#transfer-styles input[type=file]").set_input_files(str(pictures["style"]))
    _fill(page, "transfer-model", str(adain_file))
    page.locator("#transfer-run").click()
    result = page.locator("#transfer-result img")
    result.wait_for(state="visible")
    page.wait_for_function(
        "() => { const i = document.querySelector('#transfer-result img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    size = result.evaluate("image => [image.naturalWidth, image.naturalHeight]")
    assert size == [48, 40]  # the content's size (no --size)
    command = page.locator("#transfer-command").locator("textarea, input").first.input_value()
    assert "--method adain" in command and "--style style.png" in command
    page.screenshot(path=str(artefacts / "transfer.png"), full_page=True)


def test_adain_on_a_webcam_picture(page, pictures, adain_file, artefacts):
    content = page.locator("#transfer-content")
    content.get_by_role("button", name="Capture from camera").click()
    content.get_by_role("button", name="Click to Access Webcam").click()
    page.wait_for_function(  # the fake camera's frames are playing
        "() => { const v = document.querySelector('#transfer-content video');"
        " return v && v.videoWidth > 0; }"
    )
    content.get_by_role("button", name="capture photo").click()
    page.wait_for_function(  # the captured frame, uploaded and shown as the content
        "() => [...document.querySelectorAll('#transfer-content img')].some("
        " i => i.src.includes('/file=') || i.src.includes('gradio_api/file'))"
    )
    page.locator("#transfer-styles input[type=file]").set_input_files(str(pictures["style"]))
    _fill(page, "transfer-model", str(adain_file))
    page.locator("#transfer-run").click()
    page.wait_for_function(
        "() => { const i = document.querySelector('#transfer-result img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    result = page.locator("#transfer-result img")
    assert result.evaluate("image => [image.naturalWidth, image.naturalHeight]") == list(
        WEBCAM_SIZE
    )  # the camera frame's size: the webcam picture was the content
    page.screenshot(path=str(artefacts / "transfer_webcam.png"), full_page=True)


def test_a_bad_upload_is_a_readable_message(page, pictures, adain_file):
    page.locator("#transfer-content input[type=file]").set_input_files(str(pictures["content"]))
    page.locator("#transfer-styles input[type=file]").set_input_files(str(pictures["bad"]))
    _fill(page, "transfer-model", str(adain_file))
    page.locator("#transfer-run").click()
    message = page.get_by_text("is truncated or corrupt")
    message.first.wait_for(state="visible")
    assert "Traceback" not in page.content()


def test_attention_maps_one_overlay_per_word(page, artefacts):
    _open_tab(page, "Attention maps")
    _fill(page, "attention-prompt", "a giraffe and a cat")
    page.locator("#attention-suggest").click()
    page.locator("#attention-suggested").get_by_text("giraffe").wait_for()
    _fill(page, "attention-words", "giraffe, cat")
    page.locator("#attention-run").click()
    page.get_by_text("2 word maps").wait_for()
    overlays = page.locator("#attention-overlays img")
    assert overlays.count() == 2
    captions = page.locator("#attention-overlays").inner_text()
    assert "giraffe" in captions and "cat" in captions
    assert page.locator("#attention-masks img").count() == 2
    page.screenshot(path=str(artefacts / "attention.png"), full_page=True)


def test_evaluate_table_and_summary(page, pictures, tmp_path, artefacts):
    from ui_tiny import picture

    _open_tab(page, "Evaluate")
    contents = [str(picture(tmp_path / "c" / f"{n}.png", i)) for i, n in enumerate("ab")]
    results = [str(picture(tmp_path / "r" / f"{n}.png", 9 + i)) for i, n in enumerate("ab")]
    page.locator("#evaluate-contents input[type=file]").set_input_files(contents)
    page.locator("#evaluate-styles input[type=file]").set_input_files(str(pictures["style"]))
    page.locator("#evaluate-results input[type=file]").set_input_files(results)
    page.locator("#evaluate-run").click()
    page.locator("#evaluate-table").get_by_text("ssim").first.wait_for()
    assert page.locator("#evaluate-summary").get_by_text("histogram").count() >= 1
    page.screenshot(path=str(artefacts / "evaluate.png"), full_page=True)


def test_a_screenshot_per_tab(page, artefacts):
    from brushwork.ui.app import TABS

    for title, name in TABS:
        _open_tab(page, title)
        page.locator(f"#tab-{name}").wait_for(state="visible")
        time.sleep(0.3)  # let the tab lay out
        page.screenshot(path=str(artefacts / f"tab_{name}.png"), full_page=True)
        assert (artefacts / f"tab_{name}.png").stat().st_size > 1000


def _choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=option).click()


def test_cancel_stops_a_running_gatys_job(page, pictures, vgg19_file, adain_file, artefacts):
    page.locator("#transfer-content input[type=file]").set_input_files(str(pictures["content"]))
    page.locator("#transfer-styles input[type=file]").set_input_files(str(pictures["style"]))
    _choose(page, "transfer-method", "Gatys (optimisation, live preview)")
    _fill(page, "transfer-weights", str(vgg19_file[0]))
    steps = page.locator("#transfer-steps input[type=number]")
    steps.fill("1000")
    steps.press("Enter")
    page.locator("#transfer-run").click()
    page.get_by_text("optimising").first.wait_for(state="visible")  # a preview arrived
    began = time.monotonic()
    page.locator("#transfer-cancel").click()
    page.wait_for_function("() => !document.querySelector('#transfer-run').disabled")
    assert time.monotonic() - began < 30  # long before 1000 steps
    assert page.locator("#transfer-run").inner_text() == "Run"
    page.screenshot(path=str(artefacts / "transfer-cancelled.png"), full_page=True)
    assert page.get_by_text("done:").count() == 0  # no result of the cancelled job
    # The queue is free again (one job at a time): an AdaIN job runs at once, where the
    # 1000 real-size VGG-19 steps at 512 px would have held it for minutes.
    _choose(page, "transfer-method", "AdaIN (arbitrary style)")
    _fill(page, "transfer-model", str(adain_file))
    began = time.monotonic()
    page.locator("#transfer-run").click()
    page.get_by_text("done:").first.wait_for(state="visible")
    assert time.monotonic() - began < 20
