"""A throwaway PostgreSQL server for bench/run, started the way the tests
start theirs (tests/support/pg.rs): Debian's binaries (installed as
scripts/install-test-deps.sh does when missing), `initdb` as the
unprivileged `postgres` user when we are root (initdb refuses root), a temp
directory, a free loopback port, and a watchdog that stops the server and
removes the directory if bench/run itself dies without cleaning up.

Unlike the tests' server, this one is durable like sled is in the
benchmark: `fsync`, `full_page_writes` and `synchronous_commit` are on, so a
commit waits for the WAL to be on disk, as an acknowledged opt-out must.
The other settings are the ones docs/cluster.md's import figures were
measured with.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "on",
    "full_page_writes": "on",
    "synchronous_commit": "on",
    "shared_buffers": "512MB",
    "max_wal_size": "4GB",
    # Two nodes of 16 connections, their batching writers, the CLI, psql.
    "max_connections": "100",
    # Statements per unit in the report (calls and execution time).
    "shared_preload_libraries": "pg_stat_statements",
}


class PostgresError(Exception):
    pass


def bin_dir() -> Path | None:
    """The newest installed server's bin/ (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = []
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        for d in root.iterdir():
            if d.name.isdigit() and (d / "bin" / "initdb").exists():
                found.append((int(d.name), d / "bin"))
    return max(found)[1] if found else None


def ensure_installed(log: Callable[[str], None]) -> Path:
    """Debian's postgresql, installed when absent, its own cluster stopped (we never use it)."""
    found = bin_dir()
    if found:
        return found
    log("no PostgreSQL server found: installing the Debian package postgresql")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
                   check=True, env=env)
    if shutil.which("pg_lsclusters"):
        out = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            version, name = line.split()[:2]
            subprocess.run(sudo + ["pg_ctlcluster", version, name, "stop"], capture_output=True)
    found = bin_dir()
    if not found:
        raise PostgresError("postgresql installed but no /usr/lib/postgresql/*/bin/initdb")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """One server; `sup` is bench/run's Supervisor (it stops the server on exit)."""

    def __init__(self, sup, bin: Path, log: Callable[[str], None]):
        self.sup = sup
        self.bin = bin
        self.log = log
        self.base: Path | None = None
        self.proc = None
        self.port = 0
        self.databases = 0
        self.uid: int | None = None
        self.gid: int | None = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresError("running as root and there is no `postgres` user to run the "
                                    "server as (Debian's postgresql package creates it)")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid

    @property
    def version(self) -> str:
        r = subprocess.run([str(self.bin / "postgres"), "--version"], capture_output=True, text=True)
        return r.stdout.strip()

    def _as_owner(self) -> dict:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": [],
                "env": dict(os.environ, HOME="/tmp")}

    def start(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="stopgate-bench-pg-"))
        (self.base / "socket").mkdir()
        if self.uid is not None:
            for p in (self.base, self.base / "socket"):
                os.chown(p, self.uid, self.gid)
        self._watchdog()
        r = subprocess.run([str(self.bin / "initdb"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                            "--locale=C", "-D", str(self.base / "data")],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
                           **self._as_owner())
        if r.returncode != 0:
            raise PostgresError(f"initdb failed: {r.stderr[-2000:]}")
        log_path = self.base / "postgres.log"
        log_path.touch()
        if self.uid is not None:
            os.chown(log_path, self.uid, self.gid)
        # Another process may take the port between the probe and the bind: a new one then.
        for _ in range(5):
            self.port = _free_port()
            argv = [str(self.bin / "postgres"), "-D", str(self.base / "data"), "-p", str(self.port),
                    "-k", str(self.base / "socket")]
            for k, v in SETTINGS.items():
                argv += ["-c", f"{k}={v}"]
            self.proc = self.sup.start("postgres", argv, log_path, stop_signal=signal.SIGINT,
                                       **self._as_owner())
            if self._wait_ready(60):
                self.log(f"PostgreSQL ({self.version}) on 127.0.0.1:{self.port}, data in {self.base}")
                self.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                return
            self.sup.stop(self.proc)
        raise PostgresError(f"PostgreSQL did not start:\n{log_path.read_text(errors='replace')[-2000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                return False
            r = subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                               capture_output=True)
            if r.returncode == 0:
                return True
            time.sleep(0.05)
        return False

    def _watchdog(self) -> None:
        """Stops the server and removes its directory once bench/run is gone, however it ended."""
        script = r"""
            while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
            pid=$(head -n 1 "$2/data/postmaster.pid" 2>/dev/null)
            if [ -n "$pid" ]; then
                kill -QUIT "$pid" 2>/dev/null
                for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
                kill -KILL "$pid" 2>/dev/null
            fi
            rm -rf "$2"
        """
        subprocess.Popen(["sh", "-c", script, "stopgate-bench-pg-watchdog", str(os.getpid()), str(self.base)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)

    def stop(self) -> None:
        """A fast shutdown (SIGINT), then the directory goes."""
        if self.proc:
            self.sup.stop(self.proc, grace=30)
            self.proc = None
        if self.base:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def pids(self) -> list[int]:
        """The postmaster: its children are found by the caller's process_tree."""
        return [self.proc.pid] if self.proc and self.proc.alive() else []

    def url(self, db: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}?sslmode=disable"

    def psql(self, sql: str, db: str = "postgres", timeout: float = 120) -> str:
        r = subprocess.run([str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
                            "-c", sql], capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise PostgresError(f"psql: {sql[:200]}: {r.stderr.strip()[-1000:]}")
        return r.stdout.strip()

    def create_database(self) -> str:
        """A fresh, empty database; its name."""
        self.databases += 1
        name = f"bench_{self.databases}"
        self.psql(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def commits(self, db: str) -> int:
        """Committed transactions of `db` so far. Backends report their counts
        at most once a second while busy, so callers wait a little first."""
        return int(self.psql(f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'"))

    def statements(self, db: str, limit: int = 8) -> list[dict]:
        """The statements of `db` since the last call, most execution time
        first (pg_stat_statements), then starts counting again."""
        out = self.psql(
            "SELECT calls, total_exec_time, "
            "replace(left(regexp_replace(query, '\\s+', ' ', 'g'), 100), '|', '/') "
            "FROM pg_stat_statements WHERE dbid = "
            f"(SELECT oid FROM pg_database WHERE datname = '{db}') "
            f"ORDER BY total_exec_time DESC LIMIT {int(limit)}")
        self.psql("SELECT pg_stat_statements_reset()")
        rows = []
        for line in out.splitlines():
            calls, ms, query = line.split("|", 2)
            rows.append({"calls": int(calls), "exec_ms": float(ms), "query": query.strip()})
        return rows

    def relation_bytes(self, db: str, tables: list[str]) -> int:
        """Tables with their indexes and TOAST (pg_total_relation_size)."""
        parts = " + ".join(f"coalesce(pg_total_relation_size(to_regclass('{t}')), 0)" for t in tables)
        return int(self.psql(f"SELECT {parts}", db=db))

    def database_bytes(self, db: str) -> int:
        return int(self.psql(f"SELECT pg_database_size('{db}')"))
