"""No test reaches past this machine: the kit promises that nothing downloads models, datasets,
toolchains or libraries when it or its tests run.

Every connection the test process opens to an address that is not this machine (the loopback
address, a Unix socket) fails the test that opened it, with the address it tried. Local links stay
open: QEMU's serial port over TCP, the PostgreSQL search storage, the board-farm exporter. What
subprocesses do is not seen here (the compilers and QEMU have no reason to connect anywhere).
"""

from __future__ import annotations

import ipaddress
import socket

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class NetworkUsed(AssertionError):
    pass


def is_local(family: int, address) -> bool:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return True  # Unix sockets, socketpairs: this machine
    host = address[0]
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than this machine's


def forbid_remote_connections() -> None:
    """Make socket.connect and connect_ex refuse every address that is not this machine."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse_remote(self, address) -> None:
        if not is_local(self.family, address):
            raise NetworkUsed(f"a test connected to {address!r}; tinyeff and its tests must not reach the network")

    def connect(self, address):
        refuse_remote(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        refuse_remote(self, address)
        return real_connect_ex(self, address)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
