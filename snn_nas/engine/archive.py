"""The search archive: an SQLite database in the run directory.

Tables
------
``evaluations``: one row per evaluated architecture, keyed by ``hash`` (``spec_hash`` of the canonical
JSON): ``spec`` (canonical JSON), ``fitness`` (NULL for NaN), ``objectives`` (JSON list), ``metrics``
(JSON), ``status`` (``ok``/``failed``), ``error``, ``seconds``, ``generation``, ``seed``, ``created``.

``budget_evaluations`` (multi-fidelity searches, :mod:`snn_nas.engine.fidelity`): one row per (architecture,
budget), keyed by ``(hash, epochs, images)``: the same columns plus ``rung``, ``bracket`` and ``cpu_seconds``; the
rowid is the order in which results arrived (a resumed asynchronous search replays it).

``features``: training-free scores and cheap features of a candidate (``hash`` -> JSON), cached so that a prefilter
or a predictor never scores an architecture twice, even across a resume.

``strategy_state``: the strategy's ``state_dict()`` (JSON) after every completed generation, plus a
per-generation summary. ``meta``: run configuration (checked on resume) and ``archive_version``.

**Versions.** :data:`ARCHIVE_VERSION` is 2 (the budget and feature tables). An archive written before versions
existed (version 1) is migrated in place when opened: the new tables are added, nothing else changes, and the old
code reads it as before. An archive of a newer version is refused with a message naming both versions.

Every insert is its own committed transaction, so a ``kill -9`` loses at most the evaluations in flight.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any

from .space import canonical_json, spec_hash

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    hash TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    fitness REAL,
    objectives TEXT,
    metrics TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,
    seconds REAL,
    generation INTEGER NOT NULL,
    seed INTEGER,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS strategy_state (
    generation INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    summary TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS budget_evaluations (
    hash TEXT NOT NULL,
    epochs INTEGER NOT NULL,
    images INTEGER NOT NULL,
    spec TEXT NOT NULL,
    fitness REAL,
    objectives TEXT,
    metrics TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,
    seconds REAL,
    cpu_seconds REAL,
    rung INTEGER,
    bracket INTEGER,
    seed INTEGER,
    created REAL NOT NULL,
    PRIMARY KEY (hash, epochs, images)
);
CREATE TABLE IF NOT EXISTS features (
    hash TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    features TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS search_epochs (
    epoch INTEGER PRIMARY KEY,
    spec TEXT NOT NULL,
    hash TEXT NOT NULL,
    metrics TEXT NOT NULL,
    created REAL NOT NULL
);
"""


ARCHIVE_VERSION = 2  # 1: evaluations/strategy_state/meta/search_epochs; 2: + budget_evaluations, features


def _nan_to_none(x):
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


class Archive:
    """SQLite archive of a search. ``Archive(path)`` creates or opens the file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0)
            self._db.execute("PRAGMA synchronous=FULL")
            row = None
            if self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
                row = self._db.execute("SELECT value FROM meta WHERE key='archive_version'").fetchone()
            version = 1 if row is None else json.loads(row[0])
            if not isinstance(version, int) or version > ARCHIVE_VERSION:
                self._db.close()
                raise ValueError(f"{self.path} is a search archive of version {version}, newer than this neurosynth "
                                 f"reads (version {ARCHIVE_VERSION}); upgrade neurosynth or choose another output "
                                 "directory")
            self._db.executescript(_SCHEMA)  # creates what is missing: the migration from version 1
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('archive_version', ?)", (str(ARCHIVE_VERSION),))
            self._db.commit()
        except sqlite3.DatabaseError as e:
            if "disk is full" in str(e):
                raise  # the disk, not the archive: the CLI names it
            raise ValueError(f"{self.path} is not a usable search archive ({e}); "
                             "remove it or choose another output directory") from e

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- evaluations --------------------------------------------------------------------------------
    def add(self, spec: dict, record: dict, *, generation: int, seed: int | None = None) -> str:
        """Insert one evaluation (``record`` as returned by ``evaluate_safely``); returns the hash.

        Inserting an existing hash is a no-op (first result wins)."""
        h = spec_hash(spec)
        obj = record.get("objectives")
        self._db.execute(
            "INSERT OR IGNORE INTO evaluations VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (h, canonical_json(spec), _nan_to_none(record.get("fitness")),
             None if obj is None else json.dumps([_nan_to_none(o) for o in obj]),
             json.dumps(record.get("metrics") or {}, sort_keys=True, default=_default),
             record["status"], record.get("error"), record.get("seconds"), int(generation),
             None if seed is None else int(seed), time.time()),
        )
        self._db.commit()
        return h

    def get(self, h: str) -> dict | None:
        """The stored record for hash ``h`` (same keys as ``evaluate_safely`` returns, plus extras)."""
        row = self._db.execute("SELECT * FROM evaluations WHERE hash=?", (h,)).fetchone()
        return None if row is None else self._row(row)

    def __contains__(self, h: str) -> bool:
        return self._db.execute("SELECT 1 FROM evaluations WHERE hash=?", (h,)).fetchone() is not None

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])

    def records(self, status: str | None = None) -> list[dict]:
        """All evaluations in insertion order (optionally only ``ok`` or ``failed``)."""
        q, args = "SELECT * FROM evaluations", ()
        if status:
            q, args = q + " WHERE status=?", (status,)
        return [self._row(r) for r in self._db.execute(q + " ORDER BY rowid", args).fetchall()]

    def best(self, k: int = 1) -> list[dict]:
        rows = self._db.execute("SELECT * FROM evaluations WHERE status='ok' AND fitness IS NOT NULL "
                                "ORDER BY fitness DESC, rowid ASC LIMIT ?", (int(k),)).fetchall()
        return [self._row(r) for r in rows]

    @staticmethod
    def _row(r) -> dict:
        (h, spec, fitness, obj, metrics, status, error, seconds, gen, seed, created) = r
        return {"hash": h, "spec": json.loads(spec), "fitness": math.nan if fitness is None else fitness,
                "objectives": None if obj is None else [math.inf if o is None else o for o in json.loads(obj)],
                "metrics": json.loads(metrics), "status": status, "error": error, "seconds": seconds,
                "generation": gen, "seed": seed, "created": created}

    # ---- evaluations at a budget (multi-fidelity) ----------------------------------------------------
    def add_at_budget(self, spec: dict, record: dict, budget, *, rung: int, bracket: int,
                      seed: int | None = None) -> str:
        """Insert the evaluation of ``spec`` at ``budget`` (a :class:`~snn_nas.engine.fidelity.Budget`); returns the
        hash. An existing (hash, budget) is left as it is (first result wins)."""
        h = spec_hash(spec)
        obj = record.get("objectives")
        self._db.execute(
            "INSERT OR IGNORE INTO budget_evaluations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (h, int(budget.epochs), int(budget.images), canonical_json(spec), _nan_to_none(record.get("fitness")),
             None if obj is None else json.dumps([_nan_to_none(o) for o in obj]),
             json.dumps(record.get("metrics") or {}, sort_keys=True, default=_default),
             record["status"], record.get("error"), record.get("seconds"), record.get("cpu_seconds"), int(rung),
             int(bracket), None if seed is None else int(seed), time.time()),
        )
        self._db.commit()
        return h

    def get_at_budget(self, h: str, budget) -> dict | None:
        """The record of hash ``h`` at ``budget``, or None."""
        row = self._db.execute("SELECT rowid, * FROM budget_evaluations WHERE hash=? AND epochs=? AND images=?",
                               (h, int(budget.epochs), int(budget.images))).fetchone()
        return None if row is None else self._budget_row(row)

    def budget_records(self, status: str | None = None, budget=None) -> list[dict]:
        """Every evaluation at a budget in the order the results arrived (optionally only one status or one
        budget). Each record also has ``budget`` (``{"epochs", "images"}``), ``rung``, ``bracket``, ``seq``."""
        q, args = "SELECT rowid, * FROM budget_evaluations", []
        where = []
        if status:
            where.append("status=?")
            args.append(status)
        if budget is not None:
            where += ["epochs=?", "images=?"]
            args += [int(budget.epochs), int(budget.images)]
        if where:
            q += " WHERE " + " AND ".join(where)
        return [self._budget_row(r) for r in self._db.execute(q + " ORDER BY rowid", args).fetchall()]

    @staticmethod
    def _budget_row(r) -> dict:
        (seq, h, epochs, images, spec, fitness, obj, metrics, status, error, seconds, cpu, rung, bracket, seed,
         created) = r
        return {"hash": h, "spec": json.loads(spec), "fitness": math.nan if fitness is None else fitness,
                "objectives": None if obj is None else [math.inf if o is None else o for o in json.loads(obj)],
                "metrics": json.loads(metrics), "status": status, "error": error, "seconds": seconds,
                "cpu_seconds": cpu, "budget": {"epochs": epochs, "images": images}, "rung": rung,
                "bracket": bracket, "seed": seed, "created": created, "seq": seq}

    # ---- cached training-free features ----------------------------------------------------------------
    def set_features(self, spec: dict, features: dict) -> str:
        h = spec_hash(spec)
        self._db.execute("INSERT OR REPLACE INTO features VALUES (?,?,?,?)",
                         (h, canonical_json(spec), json.dumps(features, sort_keys=True, default=_default),
                          time.time()))
        self._db.commit()
        return h

    def get_features(self, h: str) -> dict | None:
        row = self._db.execute("SELECT features FROM features WHERE hash=?", (h,)).fetchone()
        return None if row is None else json.loads(row[0])

    # ---- strategy state -----------------------------------------------------------------------------
    def save_state(self, generation: int, state: dict, summary: dict | None = None) -> None:
        self._db.execute("INSERT OR REPLACE INTO strategy_state VALUES (?,?,?,?)",
                         (int(generation), json.dumps(state, default=_default),
                          json.dumps(summary or {}, default=_default), time.time()))
        self._db.commit()

    def last_state(self) -> tuple[int, dict] | None:
        """``(generation, state)`` of the last completed generation, or None."""
        row = self._db.execute(
            "SELECT generation, state FROM strategy_state ORDER BY generation DESC LIMIT 1").fetchone()
        if row is None:
            return None
        try:
            return int(row[0]), json.loads(row[1])
        except (TypeError, ValueError) as e:
            raise ValueError(f"{self.path}: the strategy state of generation {row[0]} (table strategy_state) is not "
                             f"valid JSON ({e}); the archive is damaged") from e

    def summaries(self) -> list[dict]:
        rows = self._db.execute("SELECT generation, summary FROM strategy_state ORDER BY generation").fetchall()
        return [{"generation": g, **json.loads(s)} for g, s in rows]

    # ---- one-shot (supernet) searches -------------------------------------------------------------------
    def add_epoch(self, epoch: int, spec: dict, metrics: dict) -> str:
        """Record one epoch of a one-shot search (DARTS, EG-NAS): the genotype derived at that epoch and the
        *supernet's* metrics (validation accuracy of the supernet, architecture weights, entropies). Kept
        apart from ``evaluations``: the derived genotype itself was not trained or scored, so it must not
        appear as an evaluated architecture with a fitness."""
        h = spec_hash(spec)
        self._db.execute("INSERT OR REPLACE INTO search_epochs VALUES (?,?,?,?,?)",
                         (int(epoch), canonical_json(spec), h, json.dumps(metrics, default=_default), time.time()))
        self._db.commit()
        return h

    def epochs(self) -> list[dict]:
        """Every recorded search epoch, in order: ``{"epoch", "spec", "hash", "metrics"}``."""
        rows = self._db.execute("SELECT epoch, spec, hash, metrics FROM search_epochs ORDER BY epoch").fetchall()
        return [{"epoch": e, "spec": json.loads(s), "hash": h, "metrics": json.loads(m)} for e, s, h, m in rows]

    # ---- meta ---------------------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, json.dumps(value, default=_default)))
        self._db.commit()

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])


def open_search_archive(path: str | Path, out: str | Path) -> Archive:
    """Open the archive of a search written to ``out`` (``search mse`` and ``search bio``). A file that is not a
    usable archive is a ``UserError`` naming the fix; a full disk is reported as such, not as a broken archive."""
    from neurosynth.errors import UserError, disk_full_error

    try:
        archive = Archive(path)
        archive.get_meta("config")
        return archive
    except (ValueError, sqlite3.DatabaseError) as e:
        if disk_full_error(e) is not None:  # the disk, not the archive
            raise disk_full_error(e) from e
        raise UserError(f"{Path(out) / 'archive.sqlite'} is not a usable search archive ({e}); delete "
                        f"{out} (or choose another --out) and search again without --resume") from e


def _default(o):
    from neurosynth.io import _json_default

    return _json_default(o)
