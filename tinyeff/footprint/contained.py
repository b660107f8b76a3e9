"""Run a call into a C library in a child process, so that an abort or a crash in it becomes a
TinyeffError instead of the end of the user's command.

TFLM's release build checks a model with TFLITE_CHECK, which aborts the process, and trusts op
details the kit does not read: a few in a thousand randomly damaged models that pass the kit's own
checks ended `tinyeff inspect` that way (tests/test_reader_fuzz.py).

A call goes to a small server process (`serve()` below in its own interpreter, started once per
process, about half a second), which forks one child per call and reports the child's result, its
exception, or how it died. The server is single-threaded and has imported only the kit's reader
and TFLM, so forking it is safe where forking the caller (TensorFlow's threads) would not be;
multiprocessing's own fork server is not used because it re-imports the caller's main script in
every child. TINYEFF_CONTAINED=inline makes calls in the calling process instead, for debuggers and
for tools that follow one process (mutation testing's coverage of which test reaches what).
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tinyeff.errors import TinyeffError

T = TypeVar("T")

TIMEOUT_S = 300.0
_PRELOAD = ("tinyeff.footprint.arena", "tflite_micro.python.tflite_micro.runtime")
_HEADER = struct.Struct("<Q")


# ---- framing: a length, then a pickle


def _write(fd: int, obj) -> None:
    data = pickle.dumps(obj)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int, deadline: float | None = None) -> bytes | None:
    """N bytes from FD, or None at end of file or when DEADLINE (time.monotonic) passes first."""
    chunks, left = [], n
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                return None
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read(fd: int, deadline: float | None = None):
    header = _read_exact(fd, _HEADER.size, deadline)
    if header is None:
        return None
    body = _read_exact(fd, _HEADER.unpack(header)[0], deadline)
    return None if body is None else pickle.loads(body)


# ---- the caller's side


class _Server:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "from tinyeff.footprint.contained import serve; serve()"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def call(self, fn: Callable, args: tuple):
        _write(self.proc.stdin.fileno(), (fn, args))
        return _read(self.proc.stdout.fileno(), time.monotonic() + TIMEOUT_S + 10)

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc.stdout.close()


_server: _Server | None = None
_lock = threading.Lock()


def _close_server() -> None:
    if _server is not None:
        _server.close()


def call_contained(fn: Callable[..., T], *args, what: str) -> T:
    """FN(*ARGS) in a child process: its result, or its exception raised here. When the child dies
    or hangs, TinyeffError saying that WHAT crashed. FN must be a module-level function and ARGS
    and its result picklable."""
    global _server
    if os.environ.get("TINYEFF_CONTAINED") == "inline":  # for debuggers and coverage tools that stay in one process
        return fn(*args)
    with _lock:
        if _server is None or _server.proc.poll() is not None:
            if _server is None:
                atexit.register(_close_server)
            _server = _Server()
        reply = _server.call(fn, args)
        if reply is None:  # the server itself is gone or stuck: start another next time
            _server.proc.kill()
            _server = None
            raise TinyeffError(f"{what} did not answer; run the command again, and report it if it happens twice")
    kind, value = reply
    if kind == "ok":
        return value
    if kind == "raised":
        raise value
    raise TinyeffError(f"{what} {value}: the model is damaged in a way the kit's checks do not catch; "
                       "export it again from the training framework")


# ---- the server's side


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"crashed (signal {signal.Signals(sig).name})"
        except ValueError:
            return f"crashed (signal {sig})"
    return f"crashed (exit code {os.WEXITSTATUS(status)})"


def _serve_one(fn: Callable, args: tuple):
    receive, send = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one call, its reply, and out without running any cleanup of the server's
        os.close(receive)
        try:
            try:
                reply = ("ok", fn(*args))
            except BaseException as e:  # the caller re-raises it: to the caller it is the call's own exception
                reply = ("raised", e)
            try:
                _write(send, reply)
            except Exception as e:  # an unpicklable result or exception: say what it was
                _write(send, ("raised", RuntimeError(f"{reply[1]!r} (could not be sent back: {e})")))
        finally:
            os._exit(0)
    os.close(send)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        reply = _read(receive, deadline)
        if reply is None and time.monotonic() >= deadline:  # else the pipe ended: the child is gone
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return ("died", f"did not finish in {TIMEOUT_S:.0f} s")
        _, status = os.waitpid(pid, 0)
        return reply if reply is not None else ("died", _ended(status))
    finally:
        os.close(receive)


def serve() -> None:
    """The server: requests on stdin, replies on stdout, until stdin ends."""
    import importlib

    for module in _PRELOAD:
        importlib.import_module(module)
    requests, replies = sys.stdin.fileno(), os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what the library prints must not reach the reply pipe
    while (request := _read(requests)) is not None:
        fn, args = request
        _write(replies, _serve_one(fn, args))

