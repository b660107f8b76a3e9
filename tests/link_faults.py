"""A TCP relay that damages bytes on their way between the harness and an emulated board.

It stands where a noisy UART cable would: every byte, in both directions, is replaced by
another with probability RATE. Each direction draws from its own generator seeded from SEED, so
which bytes are damaged depends only on the bytes sent, not on how the two relay threads
interleave: a failure can be replayed.
"""

from __future__ import annotations

import random
import socket
import threading
import time


class CorruptingRelay:
    def __init__(self, rate: float, seed: int = 0):
        self.rate = rate
        self._seed = seed
        self._lock = threading.Lock()  # guards the counters the two directions share
        self.corrupted = 0
        self.relayed = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = [self._listener]

    def __call__(self, target: tuple[str, int]) -> str:
        """Relay to TARGET (QEMU's serial port); returns the URL the harness connects to."""
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
        threading.Thread(target=self._pump, args=(client, board, random.Random(f"{self._seed}:to-board")),
                         daemon=True).start()
        self._pump(board, client, random.Random(f"{self._seed}:to-harness"))

    def _damage(self, data: bytes, rng: random.Random) -> bytes:
        out = bytearray(data)
        damaged = 0
        for i, b in enumerate(out):
            if rng.random() < self.rate:
                out[i] = (b + rng.randrange(1, 256)) % 256
                damaged += 1
        with self._lock:
            self.corrupted += damaged
            self.relayed += len(out)
        return bytes(out)

    def _pump(self, src: socket.socket, dst: socket.socket, rng: random.Random) -> None:
        try:
            while data := src.recv(4096):
                dst.sendall(self._damage(data, rng))
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
