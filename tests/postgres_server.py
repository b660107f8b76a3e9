"""A real PostgreSQL server for the tests, started from Debian's postgresql package in a temporary
directory (initdb, then postgres on a free localhost port) and stopped after.

PostgreSQL refuses to run as root; as root (CI containers) the server runs as the 'postgres'
user the Debian package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A started server; yields the URL of its 'postgres' database for the superuser 'tinyeff'."""
    initdb, postgres = _bin("initdb"), _bin("postgres")
    if not initdb or not postgres:
        reason = "PostgreSQL's server (Debian package postgresql) is not installed; make setup installs it"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    as_user: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="tinyeff-pg-"))
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(work, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = work / "data"
    port = _free_port()
    subprocess.run(as_user + [initdb, "-D", str(data), "-U", "tinyeff", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    server = subprocess.Popen(as_user + [postgres, "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
                                         "-c", f"unix_socket_directories={work}", "-c", "fsync=off"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {server.stderr.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.2)
        time.sleep(0.5)  # accepting TCP comes a moment before accepting logins
        yield f"postgresql://tinyeff@127.0.0.1:{port}/postgres"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)
