"""Hub registry, cache lookup and the fast offline failure of :mod:`brushwork.hub`."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from brushwork import hub, weights
from brushwork.cli.main import main
from brushwork.errors import WeightsError
from weights_testing import isolate_weights_env


def closed_port() -> int:
    """A localhost TCP port that nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Private torch and Hugging Face caches, no offline variables, a fresh probe."""
    isolate_weights_env(monkeypatch, tmp_path)
    for var in ("HF_HOME", "HF_ENDPOINT", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub, "_PROBES", {})
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)
    return cache


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> str:
    """HF_ENDPOINT at a closed localhost port: the probe really fails."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    return endpoint


def fake_snapshot(cache: Path, repo_id: str) -> Path:
    """A cache entry as huggingface_hub lays it out, holding one config file."""
    folder = cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / "0123abcd"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def test_registry_has_the_hub_models_brushwork_uses():
    from brushwork.diffusion.style_reference import IP_ADAPTER_REPO
    from brushwork.metrics.clip import DEFAULT_CLIP_MODEL
    from brushwork.metrics.structure import DEFAULT_DINO_MODEL

    repos = {m.repo_id for m in weights.HUB_MODELS.values()}
    assert {
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "stabilityai/stable-diffusion-xl-base-1.0",
        DEFAULT_CLIP_MODEL,
        DEFAULT_DINO_MODEL,
        IP_ADAPTER_REPO,
    } <= repos
    assert any("2-1" in repo for repo in repos)
    for model in weights.HUB_MODELS.values():
        assert model.description and model.used_by
        assert model.name not in weights.REGISTRY


def test_bundles_name_registered_entries():
    assert set(weights.BUNDLES) == {"transfer", "diffusion", "evaluate"}
    for names in weights.BUNDLES.values():
        for name in names:
            assert name in weights.REGISTRY or name in weights.HUB_MODELS
    with pytest.raises(WeightsError, match="valid: transfer, diffusion, evaluate"):
        weights.bundle("evaluation")


def test_hub_names_are_not_weight_files():
    with pytest.raises(WeightsError, match="Hugging Face Hub model"):
        weights.get("sd-1.5")
    assert weights.get_hub("openai/clip-vit-large-patch14").name == "clip-vit-large"


def test_probe_of_a_closed_port_fails_fast_and_turns_offline_on(no_network):
    start = time.perf_counter()
    assert hub.network_available() is False
    assert time.perf_counter() - start < 3
    assert os.environ["HF_HUB_OFFLINE"] == "1" and weights.is_offline()
    start = time.perf_counter()
    assert hub.network_available() is False  # remembered: no second probe
    assert time.perf_counter() - start < 0.1


def test_probe_of_a_listening_port_succeeds(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub.network_available() is True
    assert "HF_HUB_OFFLINE" not in os.environ


def test_uncached_model_without_network_fails_in_a_second_with_one_line(no_network):
    from transformers import CLIPModel

    start = time.perf_counter()
    with pytest.raises(WeightsError) as info:
        hub.from_pretrained(CLIPModel.from_pretrained, "openai/clip-vit-large-patch14")
    assert time.perf_counter() - start < 3
    message = str(info.value)
    assert "\n" not in message
    assert "openai/clip-vit-large-patch14" in message and "no network answered" in message
    assert "hf download openai/clip-vit-large-patch14" in message and "--model" in message
    assert "huggingface-cli" not in message and "traceback" not in message.lower()


def test_cached_model_without_network_loads_local_files_only(no_network, isolated):
    fake_snapshot(isolated, "org/tiny")
    seen = {}

    def load(source, **kwargs):
        seen.update(kwargs, source=source)
        return "loaded"

    assert hub.from_pretrained(load, "org/tiny") == "loaded"
    assert seen == {"source": "org/tiny", "local_files_only": True}


def test_local_folder_is_not_probed(monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "network_available", lambda: pytest.fail("probed a folder"))
    assert hub.from_pretrained(lambda source: source, str(tmp_path)) == str(tmp_path)


def test_offline_mode_skips_the_probe(monkeypatch):
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    monkeypatch.setattr(hub, "_connects", lambda *a: pytest.fail("probed while offline"))
    with pytest.raises(WeightsError, match=r"offline mode is on \(BRUSHWORK_OFFLINE=1\)"):
        hub.from_pretrained(lambda source: source, "org/absent")


def test_the_installed_hub_client_provides_hf():
    from importlib.metadata import entry_points

    scripts = {e.name for e in entry_points(group="console_scripts")}
    assert "hf" in scripts


# --------------------------------------------------------------------------- CLI


def test_list_shows_hub_ids_status_and_cache_folder(capsys, isolated):
    fake_snapshot(isolated, "facebook/dino-vitb8")
    assert main(["weights", "list", "-q"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["sd-1.5"][1:3] == ["hub", "stable-diffusion-v1-5/stable-diffusion-v1-5"]
    assert rows["sd-1.5"][4] == "missing"
    assert rows["sd-1.5"][5] == str(
        isolated / "models--stable-diffusion-v1-5--stable-diffusion-v1-5"
    )
    assert rows["dino-vitb8"][4] == "cache"
    assert rows["vgg19"][1] == "file"


def test_path_of_hub_model(capsys, isolated):
    snapshot = fake_snapshot(isolated, "h94/IP-Adapter")
    assert main(["weights", "path", "ip-adapter", "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(snapshot)
    assert main(["weights", "path", "sdxl-base"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "hf download" in err


def test_unknown_bundle_is_one_line_with_the_valid_names(capsys):
    assert main(["weights", "download", "--bundle", "transfers"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unknown bundle 'transfers'")
    assert "transfer, diffusion, evaluate" in err and "Traceback" not in err


def test_hub_download_without_network_fails_fast(capsys, no_network):
    start = time.perf_counter()
    assert main(["weights", "download", "clip-vit-large", "-q"]) == 1
    assert time.perf_counter() - start < 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no network answered" in err


def test_bundle_download_stops_before_hub_models_when_offline(capsys, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    assert main(["weights", "download", "--bundle", "diffusion"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "offline mode is on" in err
