"""Engine, sessions and transactions.

One engine per app (kept in ``app.extensions["authserver"]``); a session per request is opened
lazily and closed at teardown. ``transaction(session)`` is the one way to write: it commits on
success and rolls back on any exception, so an action and its audit event land together or
not at all.
"""

from __future__ import annotations

import collections
import contextlib
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import TypeVar

from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from . import sqlite_writes

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime")
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (SQLAlchemy would pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs) -> Engine:
    url = normalise_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        for name in _PG_POOL_OPTIONS:  # SQLite: one file, SQLAlchemy's default pool
            kwargs.pop(name, None)
        _ensure_sqlite_dir(url)
        # Writers queue for their turn (sqlite_writes.py) before SQLite's own lock.
        engine = create_engine(url, connect_args={
            "timeout": 30, "factory": sqlite_writes.WriteQueuedConnection}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        event.listen(engine, "reset", _sqlite_end_transaction)
        return engine
    # One pool per worker process (the app is built after fork). A connection that sat idle
    # in the pool is pinged before use (_idle_pinger) and replaced when the server or a
    # failover closed it, instead of failing the request with it; recycle stays below typical
    # idle timeouts of proxies such as PgBouncer; a request waits at most pool_timeout for a
    # connection, then fails fast (503 at the balancer, not a hang).
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_recycle", 1800)
    kwargs.setdefault("pool_timeout", 10)
    given = make_url(url).query  # libpq parameters in the URL win over ours
    kwargs["connect_args"] = {**{k: v for k, v in PG_CONNECT_ARGS.items() if k not in given},
                              **kwargs.get("connect_args", {})}
    engine = create_engine(url, **kwargs)
    event.listen(engine, "checkin", _checked_in)
    event.listen(engine, "checkout", _idle_pinger(engine.dialect))
    event.listen(engine, "do_connect", ConnectBreaker().connect)
    return engine


# A database host that goes dark (a failover, a partition) sends no reset: without these a
# query waits out the kernel's retransmissions (~15 min) and a new connection its SYN retries
# (~2 min), holding the request's thread and, in the relay, every token. With them a dead
# path fails within ~20 s (tcp_user_timeout: data or keepalive probes unanswered that long),
# under gunicorn's worker timeout and nginx's proxy_read_timeout, and the pool replaces the
# connection. libpq's own parameters (TCP only; a Unix socket ignores all but the first);
# tests/e2e/test_database_unreachable.py cuts the path in a network namespace.
PG_CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,  # milliseconds
}


class ConnectBreaker:
    """While PostgreSQL cannot be reached, one connection attempt at a time tries, at most
    one every RETRY_SECONDS (each may take connect_timeout), and the others fail at once
    (503) instead of each waiting it out: requests that need no database (JWKS, discovery)
    keep their threads, and /readyz answers in one attempt's time. A success closes it."""

    RETRY_SECONDS = 2.0

    def __init__(self):
        self._lock = threading.Lock()
        self._failed_at: float | None = None  # the last attempt failed (monotonic)
        self._trying = False  # an attempt is under way

    def connect(self, dialect, _record, cargs, cparams):
        with self._lock:
            if self._failed_at is not None and (
                    self._trying or time.monotonic() - self._failed_at < self.RETRY_SECONDS):
                raise dialect.loaded_dbapi.OperationalError(
                    "database unreachable (a connection attempt failed moments ago)")
            self._trying = True
        try:
            connection = dialect.connect(*cargs, **cparams)
        except BaseException:
            with self._lock:
                self._failed_at, self._trying = time.monotonic(), False
            raise
        with self._lock:
            self._failed_at, self._trying = None, False
        return connection


# SQLAlchemy's pool_pre_ping pings on every checkout: one more round trip for every request
# (measured: a quarter of an introspection's time under load). A connection back in the pool
# for less than this was working a moment ago; one idle longer is pinged, as pre_ping would.
PING_AFTER_IDLE_SECONDS = 1.0


def _checked_in(_dbapi_connection, record) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _idle_pinger(dialect):
    def ping_if_idle(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.get("checked_in_at")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # new, or in use a moment ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure: the pool takes another one
            raise DisconnectionError("idle connection failed its ping") from exc
        if not alive:
            raise DisconnectionError("idle connection failed its ping")

    return ping_if_idle


_PG_POOL_OPTIONS = ("pool_size", "max_overflow", "pool_recycle", "pool_timeout")


def _ensure_sqlite_dir(url: str) -> None:
    from pathlib import Path

    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN (pysqlite would defer it).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside one writer (several gunicorn workers on one file);
    # foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# An execution option (``reading``): the connection only reads.
READ_ONLY = "authserver_read_only"


def reading(engine: Engine) -> Connection:
    """A connection for reads only (use it as a context manager). On SQLite its transaction
    is deferred: in WAL mode a reader never waits for a writer, so checks made before every
    request or by the balancer (the client cache's counter, /readyz) do not queue behind
    write transactions. Never write through it (a deferred writer can fail with SQLITE_BUSY
    without waiting). PostgreSQL: an ordinary connection."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def _sqlite_begin_immediate(conn) -> None:
    # A deferred transaction that reads and then writes fails with SQLITE_BUSY (no retry)
    # when another writer committed in between; taking the write lock up front makes
    # concurrent transactions queue instead (sqlite_writes.py). SQLite is the one-machine
    # default; PostgreSQL (row locks, MVCC) is the target for concurrency.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
        return
    try:
        sqlite_writes.begin_immediate(conn.connection.driver_connection)
    except sqlite3.Error as exc:
        # Raised inside SQLAlchemy's begin event, outside its wrapping of driver errors:
        # wrapped here, so that callers catching SQLAlchemy's errors (the caches' refresh,
        # the sealer, retry_transient, the CLI) see a locked database as they always did.
        raise DBAPIError.instance("BEGIN IMMEDIATE", None, exc, sqlite3.Error) from exc


def _sqlite_end_transaction(dbapi_connection, _record, state) -> None:
    # A connection back in the pool never keeps a write transaction (and with it the write
    # queue's turn): SQLAlchemy skips its own rollback on return after a failed commit.
    if not state.terminate_only and dbapi_connection.in_transaction:
        dbapi_connection.rollback()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextlib.contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """Commit what the block did, or roll all of it back (nothing to do when the block did
    not use the session: the client-credentials path, with its cached client)."""
    try:
        yield session
        if session.in_transaction():  # add(), a query, audit.record() … each begins one
            session.commit()
    except BaseException:
        session.rollback()
        raise


@contextlib.contextmanager
def driver_connection(engine: Engine) -> Iterator:
    """The DB-API connection of a pooled connection (pinged when idle, like any checkout), for
    the hot paths' constant statements: the fast path's introspection query and the audit
    writer's inserts. SQLAlchemy's Connection and result objects around one small query cost
    about twice the query itself (measured: 143 against 52 µs of CPU per introspection
    lookup). PostgreSQL: in autocommit mode, each statement its own transaction, and back in
    transactional mode before the pool has it again; SQLite: autocommit too
    (_sqlite_pragmas), ``BEGIN IMMEDIATE`` to write. A lost connection is invalidated, not
    handed back to the pool."""
    fairy = engine.raw_connection()
    driver = fairy.driver_connection
    postgresql = engine.dialect.name == "postgresql"
    try:
        if postgresql:
            driver.autocommit = True
        yield driver
    except engine.dialect.loaded_dbapi.Error as exc:
        if engine.dialect.is_disconnect(exc, fairy.dbapi_connection, None):
            # As SQLAlchemy's Connection does on a disconnect: drop this connection and every
            # one checked out before it (a server restart closed them all).
            engine.pool._invalidate(fairy, exc)
        raise
    finally:
        if postgresql and fairy.is_valid:
            try:  # back to the pool's transactional mode, whatever happened above
                driver.rollback()  # a no-op unless a transaction was left open
                driver.autocommit = False
            except Exception as exc:  # noqa: BLE001 - never pool a connection in doubt
                fairy.invalidate(exc)
        fairy.close()


class Statement:
    """A Core SELECT compiled once for a dialect, run on a driver connection
    (``driver_connection``); the row comes back through the columns' own result processors
    (UTC datetimes, SQLite's booleans), as SQLAlchemy would return it."""

    def __init__(self, dialect: Dialect, select_statement):
        compiled = select_statement.compile(dialect=dialect)
        self.sql = compiled.string
        self._positions = compiled.positiontup  # None for named styles (psycopg: pyformat)
        columns = list(select_statement.selected_columns)
        self._processors = [c.type.dialect_impl(dialect).result_processor(dialect, None)
                            for c in columns]
        self._row = collections.namedtuple("Row", [c.key for c in columns])

    def first(self, driver, **params):
        """The first row (attributes named as the selected columns), or None."""
        bound = params if self._positions is None else tuple(params[n] for n in self._positions)
        row = driver.execute(self.sql, bound).fetchone()
        if row is None:
            return None
        return self._row(*(p(v) if p else v for p, v in zip(self._processors, row, strict=True)))


# -- transient errors ---------------------------------------------------------------------

def is_transient(exc: BaseException) -> bool:
    """A failure that a new attempt on a fresh connection may not meet: the connection was
    lost (server restart, failover, idle kill) or the database was briefly unreachable."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError | sqlite3.OperationalError):
        return True
    # The driver's own, unwrapped: statements run on a DB-API connection (driver_connection).
    # Only a loaded psycopg raises its errors (a SQLite install need not import it).
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.OperationalError
                                              | psycopg.InterfaceError)


def retry_transient(action: Callable[[], T], *, attempts: int = 3, delay: float = 0.05) -> T:
    """Run an idempotent ``action`` (reads, or a whole transaction that may simply be redone)
    again after a transient database error, with a short growing pause. Never wrap a
    non-idempotent write whose commit may have happened: it would be done twice."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            time.sleep(delay * attempt)
    raise AssertionError("unreachable")
