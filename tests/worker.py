"""A spawned worker process for code that may abort or hang (TFLM on damaged models, generated C),
so that a crash is a result a test can judge rather than the end of pytest."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable


class Worker:
    """Runs SERVE(conn) in a spawned child; call(request) sends one request and returns the child's
    reply, or ('crash', how) when the child died or did not answer within TIMEOUT_S (it is then
    restarted for the next request)."""

    def __init__(self, serve: Callable, timeout_s: float):
        self._serve, self.timeout_s = serve, timeout_s
        self._ctx = multiprocessing.get_context("spawn")  # the parent holds TensorFlow's threads: no fork
        self._start()

    def _start(self) -> None:
        self.conn, child = self._ctx.Pipe()
        # not a daemon: the kit starts children of its own (tinyeff/footprint/contained.py); close() ends it
        self.proc = self._ctx.Process(target=self._serve, args=(child,))
        self.proc.start()
        child.close()

    def call(self, request):
        self.conn.send(request)
        if self.conn.poll(self.timeout_s):
            with contextlib.suppress(EOFError):
                return self.conn.recv()
            self.proc.join(5)
            how = f"the worker died with exit code {self.proc.exitcode}"
        else:
            self.proc.kill()
            self.proc.join(5)
            how = f"the worker hung for {self.timeout_s} s"
        self.conn.close()
        self._start()
        return "crash", how

    def close(self) -> None:
        self.conn.close()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
