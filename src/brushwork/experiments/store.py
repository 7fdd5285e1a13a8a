"""The result store of a study run: one SQLite database (WAL mode) in the run folder.

Tables:

* ``meta`` — the run's settings (JSON), checked when a run is resumed, and what the
  loaded pipeline is (``model``: family, pipeline class, text stream and blocks of the
  maps; written when the pipeline first runs, checked on every later load);
* ``prompts`` — the grid: one row per prompt with its text, seed, words and state
  (``pending`` / ``done`` / ``failed``), attempts, error and time taken;
* ``rows`` — the metrics, one row per (prompt, rule, mode, threshold); primary key on
  those four, so nothing is ever counted twice.

A batch's rows and its prompts' ``done`` state are written in one transaction: a crash
or kill at any moment leaves every prompt either fully stored or pending. WAL mode lets
``brushwork study status`` read while a run writes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from brushwork.errors import ConfigError, OutputPathError
from brushwork.experiments.grid import PromptSpec
from brushwork.experiments.metrics import METRIC_COLUMNS

__all__ = [
    "DB_NAME",
    "ROW_KEYS",
    "StudyStore",
    "Transaction",
    "open_database",
    "plain_value",
    "settings_changes",
]

DB_NAME = "study.sqlite"
SCHEMA_VERSION = 1
ROW_KEYS = ("prompt_index", "rule", "mode", "threshold")
_STATES = ("pending", "done", "failed")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prompts (
    idx INTEGER PRIMARY KEY, prompt TEXT NOT NULL, seed INTEGER NOT NULL,
    template_index INTEGER NOT NULL, template TEXT NOT NULL, medium TEXT NOT NULL,
    content TEXT NOT NULL, style TEXT NOT NULL, words TEXT NOT NULL,
    content_word INTEGER NOT NULL, style_word INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT, seconds REAL, updated REAL
);
CREATE INDEX IF NOT EXISTS prompts_state ON prompts(state);
CREATE TABLE IF NOT EXISTS rows (
    prompt_index INTEGER NOT NULL REFERENCES prompts(idx), rule TEXT NOT NULL,
    mode TEXT NOT NULL, threshold REAL NOT NULL,
    {", ".join(f"{c} REAL" for c in METRIC_COLUMNS)},
    PRIMARY KEY (prompt_index, rule, mode, threshold)
);
"""


def open_database(path: Path) -> sqlite3.Connection:
    """A run store's SQLite connection: autocommit (transactions are explicit, see
    :class:`Transaction`), WAL journal so that readers see a run while it writes, a 60 s
    busy timeout for a second process on the same folder."""
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def open_store_folder(
    folder: Path, db_name: str, *, create: bool, kind: str, missing_hint: str
) -> sqlite3.Connection:
    """The SQLite store ``folder / db_name`` opened with :func:`open_database`.

    A folder without it is created (with ``create``), else OutputPathError saying it
    is not a ``kind`` folder, followed by ``missing_hint`` (how to make one).
    """
    path = folder / db_name
    if not path.exists():
        if not create:
            raise OutputPathError(f"{folder} is not a {kind} folder (no {db_name}); {missing_hint}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputPathError(f"cannot create the {kind} folder {folder}: {error}") from error
    return open_database(path)


def settings_changes(stored: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``"key: stored X, now Y"`` for every key whose value differs (sorted by key)."""
    return [
        f"{key}: stored {stored.get(key)!r}, now {now.get(key)!r}"
        for key in sorted(set(stored) | set(now))
        if stored.get(key) != now.get(key)
    ]


class StudyStore:
    """Open (or create) the store of a run folder.

    Use :meth:`create_or_check` once to record the grid and settings (or to check them
    against a stored run), then :meth:`pending`, :meth:`write_batch`,
    :meth:`mark_failed`, :meth:`counts`, :meth:`rows`.
    """

    def __init__(self, folder: str | Path, *, create: bool = True) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        self.db = open_store_folder(
            self.folder,
            DB_NAME,
            create=create,
            kind="study run",
            missing_hint="start one with 'brushwork study run -o FOLDER'",
        )
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> StudyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- settings and grid -------------------------------------------------------------
    def settings(self) -> dict[str, Any] | None:
        """The recorded settings, or None for a new store."""
        row = self.db.execute("SELECT value FROM meta WHERE key='settings'").fetchone()
        return None if row is None else json.loads(row[0])

    def create_or_check(self, grid: Sequence[PromptSpec], settings: Mapping[str, Any]) -> bool:
        """Record the grid and settings of a new run, or check them on resume.

        Returns True for a new run, False when resuming.

        Raises:
            ConfigError: the folder holds a run with other settings or another grid.
        """
        settings = json.loads(json.dumps(dict(settings)))  # canonical JSON types
        stored = self.settings()
        if stored is not None:
            changed = settings_changes(stored, settings)
            if changed:
                raise ConfigError(
                    f"the run in {self.folder} was made with other settings ("
                    + "; ".join(changed)
                    + "). Results of different settings must not be mixed: use a new output "
                    "folder, or run again with the stored settings"
                )
            self._check_grid(grid)
            return False
        with self.transaction():
            self.db.executemany(
                "INSERT INTO prompts (idx, prompt, seed, template_index, template, medium, "
                "content, style, words, content_word, style_word) VALUES "
                "(?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        p.index,
                        p.prompt,
                        p.seed,
                        p.template_index,
                        p.template,
                        p.medium,
                        p.content,
                        p.style,
                        json.dumps(list(p.words)),
                        p.content_word,
                        p.style_word,
                    )
                    for p in grid
                ],
            )
            self.db.execute(
                "INSERT INTO meta VALUES ('settings', ?), ('schema', ?), ('created', ?)",
                (json.dumps(settings, sort_keys=True), str(SCHEMA_VERSION), str(time.time())),
            )
        return True

    def model_info(self) -> dict[str, Any] | None:
        """What the loaded pipeline was (:meth:`record_model_info`), or None before any."""
        row = self.db.execute("SELECT value FROM meta WHERE key='model'").fetchone()
        return None if row is None else json.loads(row[0])

    def record_model_info(self, info: Mapping[str, Any]) -> None:
        """Record the pipeline's family, class, text stream and blocks; on a later load,
        check that they are the same.

        Raises:
            ConfigError: the model now loads as another family, stream or blocks.
        """
        info = json.loads(json.dumps(dict(info)))
        stored = self.model_info()
        if stored is None:
            with self.transaction():
                self.db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('model', ?)",
                    (json.dumps(info, sort_keys=True),),
                )
            return
        changed = settings_changes(stored, info)
        if changed:
            raise ConfigError(
                f"the run in {self.folder} was made with another model ("
                + "; ".join(changed)
                + "): use a new output folder, or the model the run was made with"
            )

    def _check_grid(self, grid: Sequence[PromptSpec]) -> None:
        stored = self.db.execute("SELECT idx, prompt, seed FROM prompts ORDER BY idx").fetchall()
        wanted = [(p.index, p.prompt, p.seed) for p in grid]
        if stored != wanted:
            first = next(
                (f"{s} vs {w}" for s, w in zip(stored, wanted, strict=False) if s != w),
                f"{len(stored)} stored prompts, {len(wanted)} asked for",
            )
            raise ConfigError(
                f"the run in {self.folder} has another prompt grid (first difference: {first}); "
                "use a new output folder, or the same --contents/--styles/--templates"
            )

    def grid(self) -> list[PromptSpec]:
        """The stored grid, in order."""
        return [
            _spec(row)
            for row in self.db.execute(
                "SELECT idx, prompt, seed, template_index, template, medium, content, style, "
                "words, content_word, style_word FROM prompts ORDER BY idx"
            )
        ]

    # -- progress ------------------------------------------------------------------------
    def pending(self, *, include_failed: bool = True, limit: int | None = None) -> list[PromptSpec]:
        """Prompts still to do, in grid order (``limit``: only the first of the whole grid)."""
        states = ("pending", "failed") if include_failed else ("pending",)
        query = (
            "SELECT idx, prompt, seed, template_index, template, medium, content, style, words, "
            f"content_word, style_word FROM prompts WHERE state IN ({','.join('?' * len(states))})"
        )
        params: list[Any] = list(states)
        if limit is not None:
            query += " AND idx < ?"
            params.append(limit)
        return [_spec(row) for row in self.db.execute(query + " ORDER BY idx", params)]

    def counts(self) -> dict[str, int]:
        """Prompts per state, plus ``total`` and ``rows``."""
        out = dict.fromkeys(_STATES, 0)
        for state, n in self.db.execute("SELECT state, COUNT(*) FROM prompts GROUP BY state"):
            out[state] = n
        out["total"] = sum(out[s] for s in _STATES)
        out["rows"] = self.db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
        return out

    def seconds_per_prompt(self, last: int = 200) -> float | None:
        """Recent wall time per done prompt (for an ETA), from the stored timings."""
        rows = self.db.execute(
            "SELECT seconds FROM prompts WHERE state='done' AND seconds IS NOT NULL "
            "ORDER BY updated DESC LIMIT ?",
            (last,),
        ).fetchall()
        return sum(r[0] for r in rows) / len(rows) if rows else None

    def failures(self) -> list[tuple[int, str, str]]:
        """(index, prompt, error) of failed prompts."""
        return self.db.execute(
            "SELECT idx, prompt, error FROM prompts WHERE state='failed' ORDER BY idx"
        ).fetchall()

    # -- writing -------------------------------------------------------------------------
    def transaction(self) -> Transaction:
        return Transaction(self.db)

    def write_batch(
        self,
        rows: Iterable[Mapping[str, Any]],
        done: Mapping[int, float],
        failed: Mapping[int, str] | None = None,
    ) -> int:
        """Store a batch atomically: its rows, its done prompts (index → seconds each) and
        its failed prompts (index → error). Returns the number of rows written."""
        columns = (*ROW_KEYS, *METRIC_COLUMNS)
        values = [tuple(plain_value(row[c]) for c in columns) for row in rows]
        now = time.time()
        with self.transaction():
            self.db.executemany(
                f"INSERT INTO rows ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})",
                values,
            )
            self.db.executemany(
                "UPDATE prompts SET state='done', attempts=attempts+1, error=NULL, seconds=?, "
                "updated=? WHERE idx=?",
                [(seconds, now, index) for index, seconds in done.items()],
            )
            self.db.executemany(
                "UPDATE prompts SET state='failed', attempts=attempts+1, error=?, updated=? "
                "WHERE idx=?",
                [(error, now, index) for index, error in (failed or {}).items()],
            )
        return len(values)

    def rows(self, *, rule: str | None = None) -> dict[str, list[Any]]:
        """All rows joined with their prompt (columns → lists), ordered by the row key."""
        query = (
            "SELECT r.prompt_index, r.rule, r.mode, r.threshold, "
            + ", ".join(f"r.{c}" for c in METRIC_COLUMNS)
            + ", p.prompt, p.seed, p.template_index, p.medium, p.content, p.style "
            "FROM rows r JOIN prompts p ON p.idx = r.prompt_index"
        )
        params: tuple[Any, ...] = ()
        if rule is not None:
            query += " WHERE r.rule = ?"
            params = (rule,)
        query += " ORDER BY r.prompt_index, r.rule, r.mode, r.threshold"
        names = [
            *ROW_KEYS,
            *METRIC_COLUMNS,
            "prompt",
            "seed",
            "template_index",
            "medium",
            "content",
            "style",
        ]
        fetched = self.db.execute(query, params).fetchall()
        return {name: [row[i] for row in fetched] for i, name in enumerate(names)}


class Transaction:
    """``with Transaction(db):`` — ``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _spec(row: Sequence[Any]) -> PromptSpec:
    return PromptSpec(
        index=row[0],
        prompt=row[1],
        seed=row[2],
        template_index=row[3],
        template=row[4],
        medium=row[5],
        content=row[6],
        style=row[7],
        words=tuple(json.loads(row[8])),
        content_word=row[9],
        style_word=row[10],
    )


def plain_value(value: Any) -> Any:
    """numpy scalars → Python; NaN → NULL."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
