"""Where the hub keeps task snapshots and event logs: in memory, or durably in SQLite.

The registry works on its in-memory state and hands each group of new events to a store
before anyone sees them. `MemoryStore` keeps nothing (events are visible at once);
`SQLiteStore` commits them on a writer thread (a small group on the loop), one transaction
for everything that arrived together, and the registry fans them out only after the commit:
an event a client has seen, or whose publisher got its 204, survives ``kill -9`` of the
server. The interface is small so that a networked backend can be added without touching the
handlers.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from ..errors import TaskStreamError
from .eventlog import Event, LineEvent, stored_event
from .storerows import rows_and_runs, without_trimmed

__all__ = ["LoadedState", "MemoryStore", "SQLiteStore", "StoreError", "TaskStore", "lock_exclusively"]


#: Events (lines) a group may hold to commit on the event loop.
INLINE_EVENTS = 64
#: The writer thread checkpoints once about this much was written to the WAL since the last
#: checkpoint (SQLite's own default: 1,000 pages of 4 KiB), counting the encoded rows and
#: three pages per transaction (record, index, meta); commits on the loop ask it to.
WAL_CHECKPOINT_BYTES = 4_096_000


class StoreError(TaskStreamError, RuntimeError):
    """The task database cannot be used (e.g. its location is read-only)."""


@dataclass
class LoadedState:
    """What a store hands back at start: task records oldest first, their events, the id counter."""

    tasks: list[dict] = field(default_factory=list)
    events: dict[str, list[Event]] = field(default_factory=dict)
    last_event_id: int = 0


class TaskStore(LoggingConfigurable):
    """The interface every store implements; this base keeps nothing (memory only)."""

    #: True when events must wait for `write` before they are shown to anyone.
    durable = False

    def open(self) -> LoadedState:
        """Load what a previous run left; a memory store starts empty."""
        return LoadedState()

    async def write(self, events: list, tasks: list[dict], last_event_id: int) -> None:
        """Persist new events (and the records of the tasks they touched) before fan-out.

        A record's ``trimmed_through`` says which of its task's events the registry's log
        trimmed: a store keeps no event of that task up to that id. Retention is decided in
        one place (the log), so a restart loads exactly the log it left, with its count.
        """

    def delete(self, task_id: str) -> None:
        """Forget a task and its events."""

    def close(self) -> None:
        """Flush what is pending and release the storage."""


class MemoryStore(TaskStore):
    """Tasks live as long as the server process: nothing survives a restart."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_task ON events (task, id);
CREATE TABLE IF NOT EXISTS lines (
    id INTEGER PRIMARY KEY,
    last INTEGER NOT NULL,
    task TEXT NOT NULL,
    stream TEXT NOT NULL,
    texts TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lines_by_task ON lines (task, last);
"""


class SQLiteStore(TaskStore):
    """Task records and events in one SQLite file (WAL), written by one thread in group commits.

    Log lines, the bulk of what a hub stores, are kept in runs: consecutive ids of one task's
    stream in one ``lines`` row (ids ``id``..``last``, the texts as one JSON array), so a
    batch of 5,000 printed lines is one row and one encode, not 5,000 of each. Every other
    event is one ``events`` row. Readers never see the difference: `open` hands back one event
    per id, and a trim deletes exactly the ids it names (a run it cuts through is shortened).
    Hand-written on the standard library's ``sqlite3``: it needs no server and no set-up,
    which is the point of an embedded default.
    """

    durable = True

    path = Unicode(help="The database file.")

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._db: sqlite3.Connection | None = None
        self._seq = 0
        self._db_lock = threading.Lock()  # the connection's user: the writer, or the loop
        # Ops queued (by the loop, which alone queues) and applied (by the writer): one writer each.
        self._queued = self._applied = 0
        #: Bytes written to the WAL since the last checkpoint, about (see WAL_CHECKPOINT_BYTES).
        self._wal_written = 0
        self._checkpoint_asked = False

    # ---- start -------------------------------------------------------------------------

    def open(self) -> LoadedState:
        """Open (or create) the file; a corrupt one is moved aside and the hub starts empty."""
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
            self._db = self._connect()
        except (OSError, sqlite3.OperationalError) as e:
            raise StoreError(
                f"cannot write the task database at {self.path} ({e}); set c.TaskStreamApp.db_path "
                "to a writable file, or c.TaskStreamApp.store = 'jupyter_taskstream.hub.store.MemoryStore'"
            ) from e
        except sqlite3.DatabaseError as e:
            aside = f"{self.path}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
            self.log.error("taskstream: the task database %s is unreadable (%s); moved it to %s", self.path, e, aside)
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.path + suffix):
                    os.replace(self.path + suffix, aside + suffix)
            self._db = self._connect()
        state = self._load()
        self._thread = threading.Thread(target=self._writer, name="taskstream-sqlite", daemon=True)
        self._thread.start()
        return state

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            # Touch the file's pages now, so corruption surfaces here and not mid-run.
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL with WAL: a committed transaction survives the process being killed;
            # only an OS crash could lose the last ones, and fsync per commit would cost more.
            db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints fsync, so only the writer thread runs them (`_writer`): SQLite's own,
            # run by whichever commit crosses 1,000 pages, could land on the event loop.
            db.execute("PRAGMA wal_autocheckpoint=0")
            db.executescript(_SCHEMA)
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
        except BaseException:
            db.close()
            raise
        return db

    def _load(self) -> LoadedState:
        assert self._db is not None
        db = self._db
        state = LoadedState()
        row = db.execute("SELECT value FROM meta WHERE key = 'last_event_id'").fetchone()
        max_id = db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
        max_line = db.execute("SELECT COALESCE(MAX(last), 0) FROM lines").fetchone()[0]
        state.last_event_id = max(int(row[0]) if row else 0, max_id, max_line)
        for task_id, seq, record in db.execute("SELECT id, seq, record FROM tasks ORDER BY seq"):
            state.tasks.append(json.loads(record))
            state.events[task_id] = []
            self._seq = max(self._seq, seq)
        for event_id, task_id, etype, data in db.execute("SELECT id, task, type, data FROM events ORDER BY id"):
            if task_id in state.events:
                state.events[task_id].append(stored_event(event_id, task_id, etype, json.loads(data)))
        # A run's lines become the `LineEvent`s the hub holds, with no dict per line in between
        # (a load's peak memory was twice what the kept lines hold after it).
        runs: dict[str, list] = {}
        for first, task_id, stream, texts in db.execute("SELECT id, task, stream, texts FROM lines ORDER BY id"):
            if task_id in state.events:
                runs.setdefault(task_id, []).extend(
                    LineEvent(i, task_id, stream, text) for i, text in enumerate(json.loads(texts), first)
                )
        for task_id, lines in runs.items():
            state.events[task_id] = sorted(state.events[task_id] + lines, key=_event_id)
        return state

    # ---- the hot path --------------------------------------------------------------------

    async def write(self, events: list, tasks: list[dict], last_event_id: int) -> None:
        """Store a group of events; returns (or raises) once the transaction holding them committed.

        A small group with nothing queued before it commits here on the loop (~30 µs, no fsync
        in WAL mode), sparing a print() two thread wake-ups (~0.5 ms on a loaded machine);
        a larger one, or one behind queued work, goes to the writer thread, in order.
        """
        rows, runs = rows_and_runs(events)
        op = ("write", rows, tasks, last_event_id, None, None, runs)
        if (len(rows) + sum(len(r[4]) for r in runs) <= INLINE_EVENTS
                and not any(t.get("trimmed_through") for t in tasks)
                and self._db_lock.acquire(blocking=False)):  # fmt: skip
            try:
                if self._queued == self._applied and self._db is not None:
                    # No checkpoint here (it fsyncs; the writer runs them): the commit is a write().
                    try:
                        self._apply([op])
                    except Exception as e:
                        self.log.error("taskstream: writing the task database failed: %s", e)
                        raise
                    if self._wal_written > WAL_CHECKPOINT_BYTES and not self._checkpoint_asked:
                        self._checkpoint_asked = True
                        self._enqueue(("checkpoint",))
                    return
            finally:
                self._db_lock.release()
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._enqueue((*op[:4], loop, done, runs))
        await done

    def _enqueue(self, op: tuple) -> None:
        self._queued += op[0] != "stop"
        self._queue.put(op)

    def delete(self, task_id: str) -> None:
        """Queue the removal of a task and its events (after anything queued before it)."""
        self._enqueue(("delete", task_id))

    def close(self) -> None:
        """Let the writer finish what is queued, then close the file."""
        if self._thread is not None:
            self._queue.put(("stop",))
            self._thread.join(30)
            self._thread = None
        if self._db is not None:
            self._db.close()
            self._db = None

    def _writer(self) -> None:
        while True:
            ops = [self._queue.get()]
            # Group commit: everything that queued up during the last transaction goes in one.
            while True:
                try:
                    ops.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(op[0] == "stop" for op in ops)
            work = [op for op in ops if op[0] in ("write", "delete")]
            errors: dict[int, BaseException] = {}
            with self._db_lock:
                try:
                    self._apply(work)
                except Exception as e:  # a full disk, say: tell the waiters instead of dying silently
                    if len(work) == 1:
                        self.log.error("taskstream: writing the task database failed: %s", e)
                        errors[id(work[0])] = e
                    else:
                        # One request's bad op must not fail the others grouped with it: one by one.
                        for op in work:
                            try:
                                self._apply([op])
                            except Exception as e:
                                self.log.error("taskstream: writing the task database failed (%s): %s", op[0], e)
                                errors[id(op)] = e
                self._applied += sum(op[0] != "stop" for op in ops)
                if any(op[0] == "checkpoint" for op in ops) or self._wal_written > WAL_CHECKPOINT_BYTES:
                    self._checkpoint()
            for op in ops:
                if op[0] == "write":
                    loop, done = op[4], op[5]
                    loop.call_soon_threadsafe(_settle, done, errors.get(id(op)))
            if stop:
                return

    def _checkpoint(self) -> None:
        self._wal_written, self._checkpoint_asked = 0, False
        try:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as e:  # busy or full: the WAL keeps everything, the next one retries
            self.log.warning("taskstream: checkpointing the task database failed: %s", e)

    def _apply(self, ops: list) -> None:
        if not ops:
            return
        db = self._db
        assert db is not None
        db.execute("BEGIN")
        written = 3 * 4096  # the task record's page, an index page, the meta page
        try:
            trims: dict[str, int] = {}
            last_id = None
            for op in ops:
                if op[0] == "write":
                    _, rows, tasks, last_event_id, _, _, runs = op
                    for record in tasks:
                        self._seq += 1
                        db.execute(
                            "INSERT INTO tasks (id, seq, record) VALUES (?, ?, ?) "
                            "ON CONFLICT(id) DO UPDATE SET record = excluded.record",
                            (record["id"], self._seq, json.dumps(record, ensure_ascii=False)),
                        )
                        if record.get("trimmed_through"):
                            trims[record["id"]] = record["trimmed_through"]
                    if rows:
                        db.executemany("INSERT OR REPLACE INTO events (id, task, type, data) VALUES (?, ?, ?, ?)", rows)
                        written += sum(len(row[3]) for row in rows)
                    if runs:
                        lines = [(first, last, task, stream, json.dumps(texts, ensure_ascii=False))
                                 for first, last, task, stream, texts in without_trimmed(runs, trims)]  # fmt: skip
                        db.executemany("INSERT OR REPLACE INTO lines (id, last, task, stream, texts) VALUES (?, ?, ?, ?, ?)", lines)
                        written += sum(len(line[4]) for line in lines)
                    last_id = last_event_id
                else:
                    task_id = op[1]
                    db.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
                    db.execute("DELETE FROM events WHERE task = ?", (task_id,))
                    db.execute("DELETE FROM lines WHERE task = ?", (task_id,))
                    trims.pop(task_id, None)
            self._prune(trims)
            if last_id is not None:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('last_event_id', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (str(last_id),),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._wal_written += written

    def _prune(self, trims: dict[str, int]) -> None:
        """Delete what the registry's logs trimmed: the events up to each record's ``trimmed_through``.

        In the same transaction as the record that counts them in ``log_dropped``: disk and
        memory keep the same events, and the count always matches what is gone.
        """
        db = self._db
        for task_id, through in trims.items():
            db.execute("DELETE FROM events WHERE task = ? AND id <= ?", (task_id, through))
            db.execute("DELETE FROM lines WHERE task = ? AND last <= ?", (task_id, through))
            # A run the trim cuts through keeps only its lines after ``through``.
            cut = db.execute("SELECT id, texts FROM lines WHERE task = ? AND id <= ?", (task_id, through)).fetchall()
            for first, texts in cut:
                kept = json.loads(texts)[through + 1 - first :]
                db.execute("UPDATE lines SET id = ?, texts = ? WHERE id = ?",
                           (through + 1, json.dumps(kept, ensure_ascii=False), first))  # fmt: skip


def lock_exclusively(path: str) -> tuple[bool, Any]:
    """Take an exclusive lock beside the database: ``(False, None)`` if another process holds it.

    Returns ``(True, handle)``; the handle holds the lock until it is closed (the server's
    lifetime). Two servers writing one history would interleave their event ids: the second
    one to start keeps its tasks in memory instead.
    """
    try:
        import fcntl
    except ImportError:  # no flock (Windows): one server per data directory is assumed
        return True, None
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        handle = open(path + ".lock", "a+")  # noqa: SIM115 (held until the server stops)
    except OSError:
        return True, None  # unwritable: the store reports it with the option to change
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return False, None
    return True, handle


_event_id = attrgetter("id")


def _settle(done: asyncio.Future, error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
