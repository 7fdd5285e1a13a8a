"""The result store of a benchmark: one SQLite database (WAL mode) in the benchmark folder.

The same design as the study's store (:mod:`brushwork.experiments.store`, whose
connection, settings comparison and transactions it uses):

* ``meta`` — the run's settings (JSON; checked on resume) and its environment;
* ``methods`` — one row per method label: its spec, state (``pending``, ``ready``,
  ``skipped`` with the exact reason), device, precision, defaults, load time;
* ``jobs`` — one row per (method, content, style), unique on those three: state
  (``pending`` / ``done`` / ``failed``), attempts, error, seconds, peak memory, the
  result file, the scoring time;
* ``scores`` — (job, metric) -> value; ``set_scores`` — (method, metric) -> value for
  metrics over a whole set (FID, ArtFID);
* ``inputs`` — input files that did not open as images, with the reason.

A job's result image is written (atomically) before its row, and its row, scores and
``done`` state go in one transaction: a kill at any moment leaves each job either fully
stored or pending, and a resumed run never computes a stored job again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brushwork.errors import ConfigError
from brushwork.experiments.store import (
    Transaction,
    open_store_folder,
    plain_value,
    settings_changes,
)

__all__ = ["DB_NAME", "BenchmarkStore", "Job"]

DB_NAME = "benchmark.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS methods (
    label TEXT PRIMARY KEY, spec TEXT NOT NULL, name TEXT NOT NULL, position INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', reason TEXT, device TEXT, precision TEXT,
    defaults TEXT, note TEXT, load_seconds REAL
);
CREATE TABLE IF NOT EXISTS jobs (
    idx INTEGER PRIMARY KEY, method TEXT NOT NULL REFERENCES methods(label),
    content TEXT NOT NULL, style TEXT NOT NULL, content_path TEXT NOT NULL,
    style_path TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, seconds REAL, peak_bytes INTEGER,
    memory_kind TEXT, score_seconds REAL, result TEXT, updated REAL,
    UNIQUE (method, content, style)
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(method, state);
CREATE TABLE IF NOT EXISTS scores (
    job INTEGER NOT NULL REFERENCES jobs(idx), metric TEXT NOT NULL, value REAL,
    PRIMARY KEY (job, metric)
);
CREATE TABLE IF NOT EXISTS set_scores (
    method TEXT NOT NULL, metric TEXT NOT NULL, value REAL, PRIMARY KEY (method, metric)
);
CREATE TABLE IF NOT EXISTS inputs (path TEXT PRIMARY KEY, reason TEXT NOT NULL);
"""

_JOB_COLUMNS = (
    "idx, method, content, style, content_path, style_path, state, attempts, error, seconds, "
    "peak_bytes, memory_kind, score_seconds, result"
)


@dataclass(frozen=True)
class Job:
    """One (method, content, style) job as stored."""

    index: int
    method: str
    content: str
    style: str
    content_path: str
    style_path: str
    state: str = "pending"
    attempts: int = 0
    error: str | None = None
    seconds: float | None = None
    peak_bytes: int | None = None
    memory_kind: str | None = None
    score_seconds: float | None = None
    result: str | None = None


class BenchmarkStore:
    """Open (or create) the store of a benchmark folder."""

    def __init__(self, folder: str | Path, *, create: bool = True) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        self.db = open_store_folder(
            self.folder,
            DB_NAME,
            create=create,
            kind="benchmark",
            missing_hint=(
                "make one with 'brushwork benchmark --contents DIR --styles DIR -o FOLDER'"
            ),
        )
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> BenchmarkStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> Transaction:
        return Transaction(self.db)

    # -- settings ------------------------------------------------------------------------
    def _meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def settings(self) -> dict[str, Any] | None:
        """The recorded settings, or None for a new store."""
        return self._meta("settings")

    def environment(self) -> dict[str, Any] | None:
        """The environment (device, versions) of the run's latest start."""
        return self._meta("environment")

    def create_or_check(self, settings: Mapping[str, Any], environment: Mapping[str, Any]) -> bool:
        """Record a new run's settings, or check them on resume (True for a new run).

        Methods are not part of the settings: a resumed run may add methods.

        Raises:
            ConfigError: the folder holds a run with other settings or software versions.
        """
        settings = json.loads(json.dumps(dict(settings)))
        environment = json.loads(json.dumps(dict(environment)))
        stored = self.settings()
        if stored is not None:
            changed = settings_changes(stored, settings)
            before = (self.environment() or {}).get("versions", {})
            changed += [
                f"version of {c}" for c in settings_changes(before, environment.get("versions", {}))
            ]
            if changed:
                raise ConfigError(
                    f"the benchmark in {self.folder} was made with other settings ("
                    + "; ".join(changed)
                    + "). Results of different settings must not be mixed: use a new output "
                    "folder, or run again with the stored settings"
                )
            return False
        with self.transaction():
            self.db.execute(
                "INSERT INTO meta VALUES ('settings', ?), ('schema', ?), ('created', ?), "
                "('environment', ?)",
                (
                    json.dumps(settings, sort_keys=True),
                    str(SCHEMA_VERSION),
                    str(time.time()),
                    json.dumps(environment, sort_keys=True),
                ),
            )
        return True

    # -- methods and jobs ----------------------------------------------------------------
    def add_methods(self, specs: Sequence[Any]) -> None:
        """Record methods (:class:`~brushwork.benchmark.methods.MethodSpec`) not yet stored.

        Raises:
            ConfigError: a stored label now names another spec.
        """
        stored = dict(self.db.execute("SELECT label, spec FROM methods"))
        for spec in specs:
            if spec.label in stored and stored[spec.label] != spec.text:
                raise ConfigError(
                    f"the benchmark in {self.folder} has '{spec.label}' as {stored[spec.label]}, "
                    f"not {spec.text}; use a new output folder"
                )
        with self.transaction():
            start = len(stored)
            for spec in specs:
                if spec.label not in stored:
                    self.db.execute(
                        "INSERT INTO methods (label, spec, name, position) VALUES (?,?,?,?)",
                        (spec.label, spec.text, spec.name, start),
                    )
                    start += 1

    def add_jobs(
        self, method: str, contents: Sequence[tuple[str, str]], styles: Sequence[tuple[str, str]]
    ) -> int:
        """Add the (content, style) jobs of ``method`` not yet stored, style by style
        (``contents``/``styles``: (name, path)); returns how many were new."""
        before = self.db.total_changes
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO jobs (method, content, style, content_path, style_path) "
                "VALUES (?,?,?,?,?)",
                [(method, c, s, cp, sp) for s, sp in styles for c, cp in contents],
            )
        return self.db.total_changes - before

    def set_method(self, label: str, state: str, **fields: Any) -> None:
        """Record a method's state (``ready``/``skipped``) with its device, precision,
        defaults (dict), note, reason or load_seconds."""
        allowed = {"reason", "device", "precision", "defaults", "note", "load_seconds"}
        unknown = set(fields) - allowed
        if unknown:
            raise TypeError(f"unknown method fields {sorted(unknown)}")
        if "defaults" in fields:
            fields["defaults"] = json.dumps(fields["defaults"], sort_keys=True)
        columns = ["state", *fields]
        with self.transaction():
            self.db.execute(
                f"UPDATE methods SET {', '.join(f'{c}=?' for c in columns)} WHERE label=?",
                (state, *fields.values(), label),
            )

    def methods(self) -> list[dict[str, Any]]:
        """Every method in the order they were added, as dicts."""
        cursor = self.db.execute(
            "SELECT label, spec, name, state, reason, device, precision, defaults, note, "
            "load_seconds FROM methods ORDER BY position"
        )
        names = [d[0] for d in cursor.description]
        out = []
        for row in cursor.fetchall():
            record = dict(zip(names, row, strict=True))
            record["defaults"] = json.loads(record["defaults"]) if record["defaults"] else {}
            out.append(record)
        return out

    def jobs(self, method: str | None = None, *, states: Sequence[str] | None = None) -> list[Job]:
        """Jobs (of ``method``, in ``states``) in the order they were added."""
        query, params = f"SELECT {_JOB_COLUMNS} FROM jobs", []
        where = []
        if method is not None:
            where.append("method = ?")
            params.append(method)
        if states is not None:
            where.append(f"state IN ({','.join('?' * len(states))})")
            params += list(states)
        if where:
            query += " WHERE " + " AND ".join(where)
        return [Job(*row) for row in self.db.execute(query + " ORDER BY idx", params)]

    def pending(self, method: str, *, include_failed: bool = True) -> list[Job]:
        """The jobs of ``method`` still to do."""
        return self.jobs(method, states=("pending", "failed") if include_failed else ("pending",))

    def write_job(
        self,
        index: int,
        *,
        result: str,
        seconds: float,
        peak_bytes: int,
        memory_kind: str,
        scores: Mapping[str, float],
        score_seconds: float,
    ) -> None:
        """Store a done job and its scores in one transaction."""
        now = time.time()
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO scores (job, metric, value) VALUES (?,?,?)",
                [(index, metric, plain_value(value)) for metric, value in scores.items()],
            )
            self.db.execute(
                "UPDATE jobs SET state='done', attempts=attempts+1, error=NULL, seconds=?, "
                "peak_bytes=?, memory_kind=?, score_seconds=?, result=?, updated=? WHERE idx=?",
                (seconds, peak_bytes, memory_kind, score_seconds, result, now, index),
            )

    def fail_job(self, index: int, error: str) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE jobs SET state='failed', attempts=attempts+1, error=?, updated=? "
                "WHERE idx=?",
                (error[:2000], time.time(), index),
            )

    def scores(self) -> dict[int, dict[str, float | None]]:
        """job index -> {metric: value}."""
        out: dict[int, dict[str, float | None]] = {}
        for job, metric, value in self.db.execute("SELECT job, metric, value FROM scores"):
            out.setdefault(job, {})[metric] = value
        return out

    def write_set_scores(self, method: str, scores: Mapping[str, float]) -> None:
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO set_scores (method, metric, value) VALUES (?,?,?)",
                [(method, m, plain_value(v)) for m, v in scores.items()],
            )

    def set_scores(self) -> dict[str, dict[str, float | None]]:
        """method -> {metric: value} of the set metrics."""
        out: dict[str, dict[str, float | None]] = {}
        for method, metric, value in self.db.execute(
            "SELECT method, metric, value FROM set_scores"
        ):
            out.setdefault(method, {})[metric] = value
        return out

    # -- inputs --------------------------------------------------------------------------
    def record_unreadable(self, files: Sequence[tuple[str, str]]) -> None:
        with self.transaction():
            self.db.executemany("INSERT OR REPLACE INTO inputs VALUES (?, ?)", list(files))

    def unreadable(self) -> list[tuple[str, str]]:
        return self.db.execute("SELECT path, reason FROM inputs ORDER BY path").fetchall()

    def counts(self, method: str | None = None) -> dict[str, int]:
        """Jobs per state (of ``method`` or all), plus ``total``."""
        out = {"pending": 0, "done": 0, "failed": 0}
        query, params = "SELECT state, COUNT(*) FROM jobs", ()
        if method is not None:
            query, params = query + " WHERE method = ?", (method,)
        for state, n in self.db.execute(query + " GROUP BY state", params):
            out[state] = n
        out["total"] = sum(out.values())
        return out
