"""Benching on boards of a labgrid farm: places acquired from a coordinator, released afterwards.

labgrid (Pengutronix) is the board farm the kit plugs into rather than a scheduler of its own: a
coordinator knows the places, exporters on the machines the boards hang off export each board's
resources, and a client acquires a place for itself. For tinyeff a place needs:

- a ``NetworkSerialPort``: the board's UART (ser2net exports a USB serial port as one with
  protocol rfc2217; an emulator's TCP serial port is exported as one with protocol raw), and
- optionally a ``TinyeffGDBServer`` (host, port, reset): the board's GDB server, through which the
  firmware is loaded (``gdb_load.py``). Without one the board must already run the project's
  firmware (the bench checks the model's SHA-256 on the device and says to flash it if not).

A place held by someone else is waited for (up to --labgrid-wait seconds) or refused with who holds
it. Places this process acquired are released when the bench ends, also after errors.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import logging
import os
import time

from tinyeff.errors import TinyeffError

GDB_RESOURCE = "TinyeffGDBServer"
DEFAULT_COORDINATOR = "127.0.0.1:20408"  # labgrid's own default


@dataclasses.dataclass(frozen=True)
class GdbServer:
    host: str
    port: int
    reset: str  # the monitor command that resets the target: system_reset (QEMU), reset (OpenOCD, pyOCD)


@dataclasses.dataclass(frozen=True)
class Place:
    name: str
    serial_url: str  # a pyserial URL: socket://host:port (raw) or rfc2217://host:port
    gdb: GdbServer | None


def coordinator_address(given: str | None) -> str:
    return given or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR


def _labgrid():
    try:
        from labgrid.remote import client
    except ImportError:
        raise TinyeffError("--labgrid needs labgrid; install it with 'pip install tinyeff[farm]' (or 'pip install labgrid')") from None
    return client


def _place_from_entries(name: str, entries: dict) -> Place:
    serial = gdb = None
    for (_res_name, cls), entry in sorted(entries.items()):
        params = entry.args
        if cls == "NetworkSerialPort" and serial is None:
            scheme = "socket" if params.get("protocol", "rfc2217") == "raw" else "rfc2217"
            serial = f"{scheme}://{params['host']}:{params['port']}"
        elif cls == GDB_RESOURCE and gdb is None:
            gdb = GdbServer(params["host"], int(params["port"]), params.get("reset", "system_reset"))
    if serial is None:
        raise TinyeffError(f"labgrid place '{name}' has no NetworkSerialPort; export the board's UART (ser2net, or an "
                           "emulator's TCP serial port with protocol: raw) and add it to the place with add-match")
    return Place(name, serial, gdb)


class LabgridPlaces:
    """Acquires the named places from the coordinator for the length of a with block."""

    def __init__(self, names: list[str], coordinator: str | None = None, wait: float = 0.0):
        if len(set(names)) != len(names):
            raise TinyeffError(f"a labgrid place is given twice ({', '.join(names)}); give each place once")
        self.names, self.wait = names, wait
        self.address = coordinator_address(coordinator)
        self._client = _labgrid()
        self._session = None
        self._held: list[str] = []

    def _run(self, coroutine):
        # labgrid's client prints what it did; the kit prints its own progress
        with contextlib.redirect_stdout(io.StringIO()):
            return self._session.loop.run_until_complete(coroutine)

    def __enter__(self) -> list[Place]:
        client = self._client
        # labgrid logs a failed connection on the root logger too: the sentence below says it once
        logging.disable(logging.ERROR)
        try:
            self._session = client.start_session(self.address, extra={
                "args": argparse.Namespace(place=None, allow_unmatched=False, kick=False)})
        except Exception as e:  # grpc raises its own errors for an unreachable coordinator
            raise TinyeffError(f"cannot reach the labgrid coordinator at {self.address} ({type(e).__name__}); "
                               "start labgrid-coordinator or pass --coordinator HOST:PORT (or set LG_COORDINATOR)") from None
        finally:
            logging.disable(logging.NOTSET)
        try:
            places = []
            for name in self.names:
                self._acquire(name)
                places.append(_place_from_entries(name, self._session.get_target_resources(self._session.get_place(name))))
            return places
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _acquire(self, name: str) -> None:
        client, session = self._client, self._session
        me = f"{session.gethostname()}/{session.getuser()}"
        deadline = time.monotonic() + self.wait
        while True:
            try:
                place = session.get_place(name)
            except client.Error:
                known = ", ".join(sorted(session.places)) or "none"
                raise TinyeffError(f"the labgrid coordinator at {self.address} has no place '{name}' (places: {known}); "
                                   f"create it with 'labgrid-client -p {name} create' and add its resources") from None
            holder = place.acquired
            if holder == me:
                raise TinyeffError(f"labgrid place '{name}' is already acquired by you ({me}); release it with "
                                   f"'labgrid-client -p {name} release' so that the bench can acquire and release it")
            if holder is None:
                session.args.place = name
                try:
                    self._run(session.acquire())
                    self._held.append(name)
                    return
                except client.Error as e:
                    if "already acquired" not in str(e):
                        raise TinyeffError(f"labgrid place '{name}' cannot be acquired: {' '.join(e.args)}") from None
                    # someone else took it between our look and our request: wait as for a held place
            if time.monotonic() >= deadline:
                waited = f" after waiting {self.wait:.0f} s" if self.wait else ""
                raise TinyeffError(f"labgrid place '{name}' is held by {holder or 'another client'}{waited}; wait for it "
                                   f"with --labgrid-wait SECONDS, or ask {holder or 'its holder'} to release it")
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            self._run(session.sync_with_coordinator())

    def __exit__(self, *exc) -> None:
        if self._session is None:
            return
        try:
            for name in self._held:
                self._session.args.place = name
                with contextlib.suppress(self._client.Error):
                    self._run(self._session.release())
            self._held = []
        finally:
            with contextlib.suppress(Exception):
                self._run(self._session.stop())
            self._session = None
