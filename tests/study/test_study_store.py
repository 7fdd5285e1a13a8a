"""The SQLite store: grid, states, atomic batches, settings and grid checks on resume."""

from __future__ import annotations

import sqlite3

import pytest

from brushwork.errors import ConfigError, OutputPathError
from brushwork.experiments.grid import build_grid
from brushwork.experiments.metrics import METRIC_COLUMNS
from brushwork.experiments.store import DB_NAME, StudyStore

SETTINGS = {"model": "tiny", "steps": 2, "rule": "first", "versions": {"torch": "x"}}


def _grid():
    return build_grid(
        contents=["cow", "giraffe"],
        styles=["Rembrandt", "Cubism"],
        templates=["a <CONTENT> in the <STYLE> style"],
    )


def _rows(index, rule="first"):
    return [
        {"prompt_index": index, "rule": rule, "mode": "fixed", "threshold": t,
         **{c: 0.5 for c in METRIC_COLUMNS}}
        for t in (0.1, 0.2)
    ]  # fmt: skip


def test_study_store_records_grid_and_states(tmp_path):
    with StudyStore(tmp_path / "run") as store:
        assert store.create_or_check(_grid(), SETTINGS) is True
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert [p.prompt for p in store.grid()] == [p.prompt for p in _grid()]
        assert store.grid() == _grid()
        assert [p.index for p in store.pending(limit=2)] == [0, 1]
        store.write_batch(_rows(0) + _rows(1), {0: 1.5, 1: 1.5}, {2: "no such word"})
        assert store.counts() == {"pending": 1, "done": 2, "failed": 1, "total": 4, "rows": 4}
        assert [p.index for p in store.pending()] == [2, 3]
        assert [p.index for p in store.pending(include_failed=False)] == [3]
        assert store.failures() == [(2, "a giraffe in the Rembrandt style", "no such word")]
        assert store.seconds_per_prompt() == 1.5
        rows = store.rows()
        assert rows["prompt_index"] == [0, 0, 1, 1] and rows["content"][2] == "cow"
    with StudyStore(tmp_path / "run") as store:  # resume with the same settings and grid
        assert store.create_or_check(_grid(), SETTINGS) is False


def test_study_store_batch_is_all_or_nothing(tmp_path):
    with StudyStore(tmp_path) as store:
        store.create_or_check(_grid(), SETTINGS)
        store.write_batch(_rows(0), {0: 1.0})
        with pytest.raises(sqlite3.IntegrityError):  # prompt 1 is fine, prompt 0 again is not
            store.write_batch(_rows(1) + _rows(0), {1: 1.0, 0: 1.0})
        counts = store.counts()
        assert counts["done"] == 1 and counts["rows"] == 2  # nothing of the failed batch
        assert [p.index for p in store.pending()] == [1, 2, 3]


def test_study_store_refuses_other_settings_or_grid(tmp_path):
    with StudyStore(tmp_path) as store:
        store.create_or_check(_grid(), SETTINGS)
        with pytest.raises(ConfigError, match=r"steps: stored 2, now 3"):
            store.create_or_check(_grid(), {**SETTINGS, "steps": 3})
        with pytest.raises(ConfigError, match="torch"):
            store.create_or_check(_grid(), {**SETTINGS, "versions": {"torch": "y"}})
        with pytest.raises(ConfigError, match="prompt grid"):
            store.create_or_check(_grid()[:3], SETTINGS)
        assert store.settings() == SETTINGS


def test_study_store_needs_a_run_folder_to_read(tmp_path):
    with pytest.raises(OutputPathError, match="not a study run folder"):
        StudyStore(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing" / DB_NAME).exists()
