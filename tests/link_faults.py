"""A TCP relay that damages the link between the harness and a device, as a bad cable or board would.

It stands where a noisy UART cable would. Each byte, in both directions, is replaced by another
with probability RATE, dropped with probability DROP, or sent twice with probability DUPLICATE.
DELAY holds each piece of the device's output that long (a slow board or a long cable).
BOOT_GARBAGE is sent to the harness as soon as it connects (a board that prints noise at boot).
ON_RUN(n) is called right after the harness's nth te-run request (counting retries) has gone to
the device: a test resets or stops the device there, at the same protocol step in every run, which
a timer could not promise. With CUT_AT_RUN = n the nth te-run request and everything after it is
lost both ways, as with a pulled cable. A request that the regular expression LOSE (bytes) matches never
reaches the device (inputs the device never answers, whichever device they go to); LOST counts them.
REWRITE(reply) is given each whole reply of the device (its bytes up to and including m-ready) and
returns what the harness gets instead: firmware that answers wrongly yet well-formed.

Each direction draws from its own generator seeded from SEED, so which bytes are damaged depends
only on the bytes sent, not on how the two relay threads interleave: a failure can be replayed.
"""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from typing import Callable

RUN_REQUEST = b"te-run "
READY = b"m-ready\r\n"


class FaultyRelay:
    def __init__(self, rate: float = 0.0, seed: int = 0, drop: float = 0.0, duplicate: float = 0.0,
                 boot_garbage: bytes = b"", on_run: Callable[[int], None] | None = None, delay: float = 0.0,
                 cut_at_run: int | None = None, lose: bytes | None = None,
                 rewrite: Callable[[bytes], bytes] | None = None):
        self.rate, self.drop, self.duplicate, self.delay = rate, drop, duplicate, delay
        self._seed, self._boot_garbage, self._on_run, self._cut_at_run = seed, boot_garbage, on_run, cut_at_run
        self._lose, self._rewrite = lose, rewrite
        self.lost = 0  # requests that held LOSE
        self._lock = threading.Lock()  # guards the counters the two directions share
        self.corrupted = 0  # bytes replaced, dropped or doubled
        self.relayed = 0
        self.runs = 0  # te-run requests that went to the device
        self._cut = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = [self._listener]

    def __call__(self, target: tuple[str, int]) -> str:
        """Relay to TARGET (the device's serial port); returns the URL the harness connects to."""
        threading.Thread(target=self._serve, args=(target,), daemon=True).start()
        return f"socket://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self, target) -> None:
        client, _ = self._listener.accept()
        deadline = time.monotonic() + 10
        while True:
            try:
                board = socket.create_connection(target)
                break
            except OSError:
                if time.monotonic() > deadline:
                    client.close()
                    return
                time.sleep(0.05)
        for s in (client, board):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sockets += [client, board]
        if self._boot_garbage:
            client.sendall(self._boot_garbage)
        threading.Thread(target=self._pump, args=(client, board, random.Random(f"{self._seed}:to-board"), True),
                         daemon=True).start()
        self._pump(board, client, random.Random(f"{self._seed}:to-harness"), False)

    def _damage(self, data: bytes, rng: random.Random) -> bytes:
        out = bytearray()
        damaged = 0
        for b in data:
            # one draw per byte whatever happens to it: the faults of a run depend on the bytes alone
            r = rng.random()
            if r < self.rate:
                out.append((b + rng.randrange(1, 256)) % 256)
            elif r < self.rate + self.drop:
                pass
            elif r < self.rate + self.drop + self.duplicate:
                out += bytes((b, b))
            else:
                out.append(b)
                continue
            damaged += 1
        with self._lock:
            self.corrupted += damaged
            self.relayed += len(data)
        return bytes(out)

    def _pump(self, src: socket.socket, dst: socket.socket, rng: random.Random, to_board: bool) -> None:
        seen = b""  # the end of what went to the board, so a request split across reads is counted once
        held = b""  # the device's output since its last whole reply, while replies are rewritten
        try:
            while data := src.recv(4096):
                runs = []
                if to_board:
                    seen = seen[-(len(RUN_REQUEST) - 1):] + data
                    with self._lock:
                        for _ in range(seen.count(RUN_REQUEST)):
                            self.runs += 1
                            runs.append(self.runs)
                    if self._cut_at_run in runs:
                        self._cut.set()
                if self._cut.is_set():
                    continue
                if to_board and self._lose and re.search(self._lose, data):
                    with self._lock:
                        self.lost += 1
                    continue
                if self.delay and not to_board:
                    time.sleep(self.delay)
                if self._rewrite and not to_board:
                    *replies, held = (held + data).split(READY)
                    data = b"".join(self._rewrite(r + READY) for r in replies)
                dst.sendall(self._damage(data, rng))
                for n in runs:
                    if self._on_run:
                        self._on_run(n)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        for s in self._sockets:
            s.close()
