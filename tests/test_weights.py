"""Tests of brushwork.weights: registry, lookup order, download, verification, loading.

No network: downloads use file:// URLs, and TORCH_HOME / BRUSHWORK_* are isolated so
the user's real torch cache is never touched.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.request
from pathlib import Path

import pytest
import torch

from brushwork import weights
from brushwork.errors import WeightsError
from brushwork.weights import WeightFile
from weights_testing import isolate_weights_env, vgg19_shapes


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest):
    """A private TORCH_HOME and no BRUSHWORK_* variables for every test."""
    if request.node.get_closest_marker("weights"):
        return None
    return isolate_weights_env(monkeypatch, tmp_path)


@pytest.fixture
def small_file(tmp_path: Path) -> tuple[Path, str]:
    """A tiny zip-format checkpoint and its SHA-256."""
    path = tmp_path / "src" / "tiny-0123abcd.pth"
    path.parent.mkdir()
    torch.save({"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def registered():
    """register(spec) for the test, removed from REGISTRY afterwards."""
    added: list[str] = []

    def add(**fields) -> WeightFile:
        spec = weights.register(WeightFile(**fields))
        added.append(spec.name)
        return spec

    yield add
    for name in added:
        weights.REGISTRY.pop(name, None)


def tiny_spec(registered, small_file, **overrides) -> WeightFile:
    path, digest = small_file
    fields = {
        "name": "tiny",
        "filename": "tiny-0123abcd.pth",
        "url": path.as_uri(),
        "sha256": digest,
        "size_bytes": path.stat().st_size,
        "description": "test file",
    }
    fields.update(overrides)
    return registered(**fields)


# --------------------------------------------------------------------------- registry


def test_registry_has_vgg_entries():
    vgg19 = weights.REGISTRY["vgg19"]
    assert vgg19.filename == "vgg19-dcbb9e9d.pth"
    assert vgg19.url == "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
    assert vgg19.sha256 == "dcbb9e9d"
    assert vgg19.size_bytes == 574673361
    vgg16 = weights.REGISTRY["vgg16"]
    assert vgg16.filename == "vgg16-397923af.pth"
    assert vgg16.sha256.startswith("397923af") and len(vgg16.sha256) == 64
    assert vgg16.size_bytes == 553433881


def test_register_rejects_duplicates_and_bad_digests(registered):
    registered(name="dup", filename="dup.pth", url="file:///x", sha256="ABCDEF01")
    assert weights.REGISTRY["dup"].sha256 == "abcdef01"  # normalised to lower case
    with pytest.raises(ValueError, match="already registered"):
        weights.register(WeightFile("dup", "dup2.pth", "file:///y", "abcdef01"))
    with pytest.raises(ValueError, match="hex"):
        WeightFile("short", "s.pth", "file:///s", "abc123")
    with pytest.raises(ValueError, match="hex"):
        WeightFile("nothex", "s.pth", "file:///s", "zzzzzzzz")
    with pytest.raises(ValueError, match="file name"):
        WeightFile("slash", "../s.pth", "file:///s", "abcdef01")


def test_unknown_name_suggests_a_known_one():
    with pytest.raises(WeightsError, match="did you mean 'vgg19'") as info:
        weights.resolve("vgg91")
    assert "vgg16" in str(info.value)


def test_cache_dir_follows_torch_home(isolated: Path):
    assert weights.cache_dir() == isolated / "hub" / "checkpoints"
    assert weights.expected_cache_path("vgg19") == isolated / "hub/checkpoints/vgg19-dcbb9e9d.pth"
    assert weights.file_env_var("vgg19") == "BRUSHWORK_VGG19_WEIGHTS"
    assert weights.file_env_var("lpips-vgg.v0.1") == "BRUSHWORK_LPIPS_VGG_V0_1_WEIGHTS"


# --------------------------------------------------------------------------- loading


def test_loads_vgg19_layout(registered, vgg19_file):
    path, digest = vgg19_file
    registered(name="vgg19-test", filename=path.name, url=path.as_uri(), sha256=digest)
    state = weights.load_state_dict("vgg19-test", path=path)
    expected = vgg19_shapes()
    features = {k: tuple(v.shape) for k, v in state.items() if k.startswith("features.")}
    assert features == expected
    assert len(expected) == 32  # 16 convolutions
    assert "features.34.weight" in state and "features.36.weight" not in state
    assert all(v.device.type == "cpu" for v in state.values())


def test_wrong_digest_refused(registered, vgg19_file):
    path, digest = vgg19_file
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:16]
    registered(name="vgg19-wrong", filename=path.name, url=path.as_uri(), sha256=wrong)
    with pytest.raises(WeightsError, match="SHA-256") as info:
        weights.load_state_dict("vgg19-wrong", path=path)
    message = str(info.value)
    assert wrong in message and digest[:16] in message and str(path) in message
    # verify_hash=False loads it anyway
    assert "features.0.weight" in weights.load_state_dict(
        "vgg19-wrong", path=path, verify_hash=False
    )


def test_size_mismatch_refused_without_hashing(registered, small_file, monkeypatch):
    spec = tiny_spec(registered, small_file, size_bytes=small_file[0].stat().st_size + 1)
    monkeypatch.setattr(weights, "sha256_file", lambda p: pytest.fail("hashed"))
    with pytest.raises(WeightsError, match="bytes, expected"):
        weights.verify(small_file[0], spec)


def test_verified_index_avoids_rehash(registered, small_file, monkeypatch, isolated):
    spec = tiny_spec(registered, small_file)
    path = small_file[0]
    calls: list[Path] = []
    real = weights.sha256_file

    def counting(p):
        calls.append(Path(p))
        return real(p)

    monkeypatch.setattr(weights, "sha256_file", counting)
    weights.verify(path, spec)
    weights.verify(path, spec)
    assert len(calls) == 1
    index = json.loads((weights.cache_dir() / weights.INDEX_NAME).read_text())
    entry = index[str(path.resolve())]
    assert entry["sha256"] == small_file[1] and entry["size"] == path.stat().st_size

    # a different expected digest is checked against the remembered one, still no rehash
    other = WeightFile("other", path.name, "file:///x", "ffffffff")
    with pytest.raises(WeightsError):
        weights.verify(path, other)
    assert len(calls) == 1

    # touching the file invalidates its entry
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    weights.verify(path, spec)
    assert len(calls) == 2


def test_corrupt_index_is_ignored_and_rebuilt(registered, small_file):
    spec = tiny_spec(registered, small_file)
    index = weights.cache_dir() / weights.INDEX_NAME
    index.parent.mkdir(parents=True)
    index.write_text("{not json")
    weights.verify(small_file[0], spec)
    assert str(small_file[0].resolve()) in json.loads(index.read_text())
    index.write_text("[1, 2]")
    weights.verify(small_file[0], spec)
    assert str(small_file[0].resolve()) in json.loads(index.read_text())
    assert [p.name for p in index.parent.iterdir()] == [weights.INDEX_NAME]


def test_unwritable_cache_skips_remembering(registered, small_file, monkeypatch, tmp_path):
    spec = tiny_spec(registered, small_file)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("TORCH_HOME", str(blocker))  # cache_dir() cannot be created
    weights.verify(small_file[0], spec)  # no error
    state = weights.load_state_dict("tiny", path=small_file[0])
    assert torch.equal(state["w"], torch.arange(6.0).reshape(2, 3))


class Payload:
    """Not a tensor: weights_only must refuse to rebuild it."""

    rebuilt = False

    def __setstate__(self, state):
        Payload.rebuilt = True
        self.__dict__.update(state)


def test_pickled_object_refused(registered, tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2), "x": Payload()}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    registered(name="evil", filename=path.name, url=path.as_uri(), sha256=digest)
    with pytest.raises(WeightsError, match="not a valid checkpoint for 'evil'") as info:
        weights.load_state_dict("evil", path=path)
    assert "Payload" in str(info.value)
    assert "\n" not in str(info.value)
    assert not Payload.rebuilt


def test_non_dict_and_non_tensor_and_garbage_refused(registered, tmp_path):
    cases = {
        "list.pth": lambda p: torch.save([torch.zeros(2)], p),
        "nested.pth": lambda p: torch.save({"state_dict": {"w": torch.zeros(2)}}, p),
        "garbage.pth": lambda p: p.write_bytes(b"this is not a checkpoint"),
        "garbage.safetensors": lambda p: p.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}"),
    }
    for filename, write in cases.items():
        path = tmp_path / filename
        write(path)
        spec = registered(
            name=f"bad-{filename}", filename=filename, url=path.as_uri(), sha256="00000000"
        )
        with pytest.raises(WeightsError, match="not a valid checkpoint"):
            weights.load_state_dict(spec.name, path=path, verify_hash=False)


def test_legacy_and_safetensors_formats_load(registered, tmp_path):
    from safetensors.torch import save_file

    tensors = {"a": torch.arange(4.0), "b": torch.eye(2)}
    legacy = tmp_path / "legacy.pth"
    torch.save(tensors, legacy, _use_new_zipfile_serialization=False)
    safe = tmp_path / "model.safetensors"
    save_file(tensors, str(safe))
    for path in (legacy, safe):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        registered(name=path.stem, filename=path.name, url=path.as_uri(), sha256=digest)
        state = weights.load_state_dict(path.stem, path=path)
        assert state.keys() == tensors.keys()
        assert all(torch.equal(state[k], tensors[k]) for k in tensors)


# --------------------------------------------------------------------------- lookup order


def test_explicit_path_wins_and_missing_path_named(registered, small_file, tmp_path, monkeypatch):
    spec = tiny_spec(registered, small_file)
    monkeypatch.setenv("BRUSHWORK_WEIGHTS_DIR", str(tmp_path / "elsewhere"))
    assert weights.resolve(spec.name, path=small_file[0]) == small_file[0]
    assert weights.resolve(spec.name, path=small_file[0].parent) == small_file[0]  # folder
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match=r"nope\.pth"):
        weights.resolve(spec.name, path=missing)


def test_env_dir_and_env_file(registered, small_file, tmp_path, monkeypatch):
    spec = tiny_spec(registered, small_file)
    folder = small_file[0].parent
    monkeypatch.setenv("BRUSHWORK_WEIGHTS_DIR", str(folder))
    assert weights.resolve(spec.name, download=False) == small_file[0]
    assert weights.status(spec.name) == (small_file[0], "env-dir")

    other = tmp_path / "renamed.pth"
    other.write_bytes(small_file[0].read_bytes())
    monkeypatch.setenv("BRUSHWORK_TINY_WEIGHTS", str(other))
    assert weights.resolve(spec.name, download=False) == other  # per-file var beats the dir
    assert weights.status(spec.name) == (other, "env-file")
    assert weights.load_state_dict(spec.name).keys() == {"w", "b"}

    monkeypatch.setenv("BRUSHWORK_TINY_WEIGHTS", str(tmp_path / "gone.pth"))
    with pytest.raises(WeightsError, match="BRUSHWORK_TINY_WEIGHTS"):
        weights.resolve(spec.name)
    assert weights.status(spec.name) == (None, "missing")


def test_env_dir_without_the_file_falls_back_to_cache(
    registered, small_file, tmp_path, monkeypatch
):
    spec = tiny_spec(registered, small_file)
    monkeypatch.setenv("BRUSHWORK_WEIGHTS_DIR", str(tmp_path / "empty"))
    cached = weights.expected_cache_path(spec.name)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(small_file[0].read_bytes())
    assert weights.resolve(spec.name, download=False) == cached
    assert weights.status(spec.name) == (cached, "cache")


# --------------------------------------------------------------------------- download


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_file_url_into_torch_home(registered, vgg19_file, isolated, monkeypatch):
    path, digest = vgg19_file
    registered(
        name="vgg19-dl",
        filename="vgg19-dl-0000.pth",
        url=path.as_uri(),
        sha256=digest[:8],
        size_bytes=path.stat().st_size,
    )
    assert weights.status("vgg19-dl") == (None, "missing")
    hashed: list[object] = []
    monkeypatch.setattr(weights, "sha256_file", lambda p: hashed.append(p) or "")
    state = weights.load_state_dict("vgg19-dl")
    target = isolated / "hub" / "checkpoints" / "vgg19-dl-0000.pth"
    assert target.read_bytes() == path.read_bytes()
    assert _leftovers(target.parent) == sorted([target.name, weights.INDEX_NAME])
    assert hashed == []  # hashed while downloading, remembered, not hashed again
    assert {k: tuple(v.shape) for k, v in state.items() if k.startswith("features.")} == (
        vgg19_shapes()
    )
    assert weights.status("vgg19-dl") == (target, "cache")
    # cached now: works offline
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    assert weights.resolve("vgg19-dl") == target


def test_download_hash_mismatch_is_atomic(registered, small_file):
    spec = tiny_spec(registered, small_file, sha256="deadbeef")
    with pytest.raises(WeightsError, match="SHA-256"):
        weights.resolve(spec.name)
    folder = weights.cache_dir()
    assert not (folder / spec.filename).exists()
    assert _leftovers(folder) == []


def test_download_size_mismatch_is_atomic(registered, small_file):
    spec = tiny_spec(registered, small_file, size_bytes=10**6)
    with pytest.raises(WeightsError, match="bytes, expected"):
        weights.resolve(spec.name)
    assert _leftovers(weights.cache_dir()) == []


class _Broken(io.BytesIO):
    """A response that fails half-way."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}

    def read(self, size: int = -1) -> bytes:
        if self.tell() >= 50:
            raise TimeoutError("timed out")
        return super().read(min(size, 50))


def test_interrupted_download_leaves_nothing(registered, small_file, monkeypatch):
    spec = tiny_spec(registered, small_file)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _Broken(b"x" * 100))
    with pytest.raises(WeightsError, match=r"could not download 'tiny'.*timed out"):
        weights.resolve(spec.name)
    assert _leftovers(weights.cache_dir()) == []

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_Broken, "read", interrupt)
    with pytest.raises(KeyboardInterrupt):
        weights.resolve(spec.name)
    assert _leftovers(weights.cache_dir()) == []


def test_network_failure_is_a_weights_error(registered, small_file, tmp_path):
    spec = tiny_spec(registered, small_file, url=(tmp_path / "absent.pth").as_uri())
    with (
        weights.flag_hints({"*": "--weights"}),
        pytest.raises(WeightsError, match="could not download") as info,
    ):
        weights.resolve(spec.name)
    assert "pass it with --weights PATH" in str(info.value)
    assert _leftovers(weights.cache_dir()) == []


@pytest.mark.parametrize("var", ["BRUSHWORK_OFFLINE", "HF_HUB_OFFLINE", None])
def test_offline_and_missing_explains_how_to_provide(var, monkeypatch, isolated):
    if var:
        monkeypatch.setenv(var, "1")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("network"))
    with (
        weights.flag_hints({"vgg19": "--vgg-weights", "*": "--weights"}),
        pytest.raises(WeightsError) as info,
    ):
        weights.load_state_dict("vgg19", download=var is not None)
    message = str(info.value)
    assert "\n" not in message
    assert "--vgg-weights PATH" in message  # the running command's own flag
    assert "vgg19-dcbb9e9d.pth" in message
    assert "548 MiB" in message
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message
    assert "BRUSHWORK_WEIGHTS_DIR" in message and "BRUSHWORK_VGG19_WEIGHTS" in message
    assert str(isolated / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in message
    if var:
        assert var in message
    assert not weights.cache_dir().exists()


def test_download_reuses_valid_cache_and_force_redownloads(registered, small_file, monkeypatch):
    spec = tiny_spec(registered, small_file)
    first = weights.download(spec.name, progress=False)
    opened: list[str] = []
    real = urllib.request.urlopen

    def counting(request, *args, **kwargs):
        opened.append(request.full_url)
        return real(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", counting)
    assert weights.download(spec.name) == first
    assert opened == []
    assert weights.download(spec.name, force=True) == first
    assert len(opened) == 1
    first.write_bytes(b"corrupt")  # a bad cached file is fetched again
    assert weights.download(spec.name) == first
    assert len(opened) == 2 and first.read_bytes() == small_file[0].read_bytes()
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    with pytest.raises(WeightsError, match="offline"):
        weights.download(spec.name, force=True)


def test_progress_bar_on_a_terminal(registered, small_file, monkeypatch):
    from rich.console import Console

    out = io.StringIO()
    monkeypatch.setattr(
        weights, "_progress_console", lambda: Console(file=out, force_terminal=True, width=100)
    )
    spec = tiny_spec(registered, small_file)
    assert weights.resolve(spec.name).is_file()
    assert spec.filename in out.getvalue()


def test_progress_line_when_not_a_terminal(registered, small_file, capsys):
    spec = tiny_spec(registered, small_file)
    weights.resolve(spec.name)
    assert f"downloading {spec.filename}" in capsys.readouterr().err


# --------------------------------------------------------------------------- real weights


@pytest.mark.weights
@pytest.mark.skipif(
    os.environ.get("BRUSHWORK_REAL_WEIGHTS") != "1", reason="set BRUSHWORK_REAL_WEIGHTS=1"
)
def test_real_vgg19_weights():
    state = weights.load_state_dict("vgg19", download=False)
    features = {k: tuple(v.shape) for k, v in state.items() if k.startswith("features.")}
    assert features == vgg19_shapes()


def test_file_without_a_published_digest_loads_and_downloads(registered, small_file, isolated):
    spec = tiny_spec(registered, small_file, name="nohash", sha256=None)
    assert spec.sha256 is None
    path = weights.download("nohash", progress=False)  # nothing to check the download against
    assert path == weights.cache_dir() / spec.filename
    weights.verify(path, spec)  # no digest: nothing to compare, no error
    state = weights.load_state_dict("nohash", progress=False)
    assert state.keys() == torch.load(small_file[0], weights_only=True).keys()


def test_hint_without_a_command_names_no_flag(isolated, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_OFFLINE", "1")
    with pytest.raises(WeightsError) as info:
        weights.resolve("vgg19")
    assert "pass its path" in str(info.value) and "--weights" not in str(info.value)


@pytest.mark.parametrize("name", ["adain-vgg-normalised", "adain-decoder", "vgg19"])
def test_published_files_resolve_by_explicit_path_or_folder(name, tmp_path, isolated):
    spec = weights.get(name)
    own = tmp_path / "own-copy.pth"
    own.write_bytes(b"x")
    assert weights.resolve(name, path=own, download=False) == own
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / spec.filename).write_bytes(b"x")
    assert weights.resolve(name, path=folder, download=False) == folder / spec.filename
    with pytest.raises(WeightsError, match="does not exist"):
        weights.resolve(name, path=tmp_path / "absent.pth", download=False)
