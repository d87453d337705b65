"""A run's pulled records, kept on disk until their pair is planned (issue #12 point 4).

Contract:
- :class:`RecordSpool` keeps each record it is given in a private temporary
  SQLite file and hands back a :class:`PulledRecord`: what pairing reads
  (side, id, display, version, foreign id) and the row holding the rest. The
  rest (update time, vendor fields, comments, URL) is read back with :meth:`load`,
  a batch of rows in one query, when its pair is planned, and is equal to the
  record as pulled (the planner decides exactly as it would on the original).
- The file is made by :func:`tempfile.mkstemp` in the temporary directory
  (``$TMPDIR``): mode 0600 from its first byte (it holds incident texts), a
  name nobody else can take. Its name is removed as soon as SQLite has it
  open: the data lives on only through the open connection, so even a killed
  process leaves nothing behind (the kernel frees the file). :meth:`close`,
  which the planner calls when the run's planning ends (on an error or an
  interrupt too), closes the connection and so frees the file; a spool never
  closed is freed when it is collected or when the interpreter exits.
- One spool per planning pass, used by one thread at a time: the run's thread
  while it pulls and pairs, then the one planning its batches (a run plans
  them on a background thread, :class:`sync.planner.BatchStream`, joined
  before the spool is closed). It is a scratch file, so it is written without
  a journal or fsync: nothing in it must survive a crash.
- A spool that cannot be made, written or read (no temporary directory, a full
  disk) raises :class:`SpoolError`: one line naming the directory and the
  reason, never an internal error.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import tempfile
import weakref
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from connectors.base import RemoteRecord, Side, SyncError

# Rows written in one statement, and asked for in one query (under SQLite's bound
# on a statement's parameters, 999 in old builds).
CHUNK = 500


class SpoolError(SyncError):
    """The run's record spool failed: a local problem (disk, temporary directory)."""


def _spool_error(doing: str, error: BaseException) -> SpoolError:
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return SpoolError(
        f"cannot {doing} the run's record spool in {tempfile.gettempdir()}: {reason} "
        "(a run keeps pulled records there until their batch; set TMPDIR to a "
        "writable directory with room)")


@dataclass(frozen=True, slots=True)
class PulledRecord:
    """A spooled record as pairing sees it; ``row`` finds the rest in its spool."""

    side: Side
    id: str
    display: str
    version: str
    foreign_id: str | None
    row: int


class RecordSpool:
    """Records on disk, each read back by its :class:`PulledRecord` (see the module)."""

    def __init__(self) -> None:
        # Made here, so SQLite opens a file that is private from its first byte.
        try:
            handle, self.path = tempfile.mkstemp(prefix="incident-sync-spool-", suffix=".db")
        except OSError as error:
            raise _spool_error("make", error) from None
        os.close(handle)
        db: sqlite3.Connection | None = None
        try:
            # Never used by two threads at once, but by more than one: the run's, then
            # its planner's (see the module); the finalizer may close it from another.
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute("CREATE TABLE raw (row INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        except sqlite3.Error as error:
            if db is not None:
                db.close()
            raise _spool_error("make", error) from None
        except BaseException:
            if db is not None:
                db.close()
            raise
        finally:
            # Unnamed from now on (POSIX keeps an open file); nothing reopens it by
            # name, and without a journal SQLite makes no file beside it.
            os.unlink(self.path)
        self._db: sqlite3.Connection | None = db
        self._removal = weakref.finalize(self, db.close)
        self._pending: list[tuple[int, bytes]] = []
        self._rows = 0

    def put(self, record: RemoteRecord) -> PulledRecord:
        """Keep ``record`` on disk; what pairing needs of it stays in memory."""
        self._rows += 1
        # pickle: an exact copy of every value (a datetime, a tuple), read back only
        # from this private file; compressed, for the disk the texts take.
        data = zlib.compress(pickle.dumps(
            (record.updated, record.fields, record.comments, record.url),
            pickle.HIGHEST_PROTOCOL), 1)
        self._pending.append((self._rows, data))
        if len(self._pending) >= CHUNK:
            self._flush()
        return PulledRecord(record.side, record.id, record.display, record.version,
                            record.foreign_id, self._rows)

    def load(self, pulled: Iterable[PulledRecord]) -> dict[int, RemoteRecord]:
        """The records of ``pulled`` as they were put, by row."""
        by_row = {p.row: p for p in pulled}
        self._flush()
        rows = sorted(by_row)
        found: dict[int, RemoteRecord] = {}
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start:start + CHUNK]
            marks = ",".join("?" * len(chunk))
            try:
                answer = self._connection().execute(
                    f"SELECT row, data FROM raw WHERE row IN ({marks})", chunk).fetchall()
            except sqlite3.Error as error:
                raise _spool_error("read", error) from None
            for row, data in answer:
                updated, fields, comments, url = pickle.loads(zlib.decompress(data))
                p = by_row[row]
                found[row] = RemoteRecord(side=p.side, id=p.id, display=p.display,
                                          version=p.version, updated=updated,
                                          fields=fields, comments=comments,
                                          foreign_id=p.foreign_id, url=url)
        return found

    def close(self) -> None:
        """Close the file, which frees it (again: nothing happens)."""
        self._db = None
        self._pending.clear()
        self._removal()

    @property
    def closed(self) -> bool:
        return not self._removal.alive

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the record spool is closed")
        return self._db

    def _flush(self) -> None:
        if self._pending:
            try:
                self._connection().executemany("INSERT INTO raw (row, data) VALUES (?, ?)",
                                               self._pending)
            except sqlite3.Error as error:
                raise _spool_error("write", error) from None
            self._pending.clear()

