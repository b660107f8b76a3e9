"""The host side of the serial protocol: MLPerf Tiny DUT commands and tinyeff's te- commands.

``command`` speaks the MLPerf Tiny protocol as a test runner does: one command, its reply up to
``m-ready``. ``run`` is what benches use: the input goes up in CRC-checked binary chunks
(``te-put``), the inference runs only if the whole input's CRC matches (``te-run``), and the
reply carries a CRC of its own. A corrupted or lost exchange is retried (bounded); a reset of
the device (its ``m-init-done`` banner) and a HardFault report are raised as such, so a bench can
redo the sample or stop, and no sample is counted twice or lost silently.
"""

from __future__ import annotations

import dataclasses
import re
import time
import zlib

import numpy as np

from tinyeff.errors import TinyeffError
from tinyeff.harness.device import DeviceTimeout, LinkClosed

READY = b"m-ready\r\n"
BANNER = "m-init-done"
READY_PROBE_S = 2.0  # silence after opening the port before wait_ready asks a device that booted already
HEX_PER_COMMAND = 76  # "db " + 76 hex digits + "%" stays under the 80-byte command limit
PUT_CHUNK = 64  # raw bytes of the first te-put: small enough that a corrupted chunk costs little to resend
MAX_PUT_CHUNK = 1024  # ... and of later ones while the link stays clean (a 1 s clip of 16-bit PCM is 32 KB)
MIN_PUT_CHUNK = 8  # ... and on a noisy one: each damaged te-put halves the chunk, each clean one doubles it
# A refusal by name (a sample past the end of the device's buffer) is believed when it comes this many
# times in a row: a request damaged on the link (a digit of its length doubled) can draw one too
REFUSALS_BELIEVED = 3
_STALE = object()

# Forward error correction (te_protocol.h): on a link that damages a few percent of bytes a reply of
# 40 bytes arrives whole one time in eight, so retries alone take dozens of tries per exchange. Coded,
# each byte goes three times and the bitwise majority is wrong only where two copies lost the same
# bit. The host codes its requests once two damaged replies to one request differ only in a few
# bytes, as flipped bits leave them (bytes lost or doubled shift the rest instead), and goes back
# to plain bytes when the copies of FEC_CLEAN_THREES bytes in a row differed in fewer than
# FEC_CLEAN_SHARE of them (a link that has become clean pays three times its bytes for nothing), or
# when FEC_SHIFTED_TRIES tries in a row came back shifted: a link that drops or doubles bytes
# shifts every three after the loss (the copies of most threes then differ, FEC_SHIFTED_SHARE or
# more, where damage alone leaves a few percent), and three times the bytes only give it more to
# lose. It then stays plain for FEC_PAUSE exchanges, twice as many each time.
FEC_START = b"\x01\x01\x01"
FEC_SHIFTED_TRIES = 3
FEC_FLIPPED_SHARE = 1 / 8  # two damaged copies of one reply that differ in at most this share of bytes: flipped bits
FEC_CLEAN_THREES = 4096
FEC_CLEAN_SHARE = 0.001
FEC_SHIFTED_SHARE = 0.3
FEC_PAUSE = 16
FEC_DROP_S = 0.15  # the device drops a coded request cut short after 100 ms of silence


def fec_encode(request: bytes) -> bytes:
    """REQUEST as a coded request: the start bytes, then each byte three times."""
    return FEC_START + np.repeat(np.frombuffer(request, np.uint8), 3).tobytes()


def fec_decode(raw: bytes) -> tuple[bytes, int, int]:
    """A coded reply's bytes: (the bitwise majority of each three, threes, threes whose copies differed)."""
    n = len(raw) // 3
    t = np.frombuffer(raw[: 3 * n], np.uint8).reshape(n, 3)
    a, b, c = t[:, 0], t[:, 1], t[:, 2]
    differed = int(np.count_nonzero((a != b) | (a != c)))
    return ((a & b) | (a & c) | (b & c)).tobytes(), n, differed


@dataclasses.dataclass(frozen=True)
class Signature:
    sha256: str
    runtime: str
    board: str


@dataclasses.dataclass(frozen=True)
class Inference:
    output: np.ndarray  # int8 output bytes, exactly as the device computed them
    ticks: int  # device timer ticks for the inference
    frontend_ticks: int | None = None  # ... and for the front end before it (te-raw-run)


@dataclasses.dataclass(frozen=True)
class StreamPush:
    """What a keyword stream on the device did with one push of audio."""

    hops: int  # hops heard since te-stream-start, this push's included
    outputs: np.ndarray  # (inferences, classes) int8: the model's outputs at each inference this push asked for
    reports: tuple[tuple[int, int], ...]  # (hops heard, class) of each keyword reported
    ticks: int  # the model's timer ticks over this push
    frontend_ticks: int  # ... and the front end's


@dataclasses.dataclass(frozen=True)
class DeviceMemory:
    arena_bytes: int  # declared: what the firmware reserves for the model
    arena_used_bytes: int  # what the runtime's planner took of it
    stack_bytes: int  # painted high-water mark


class DeviceError(TinyeffError):
    pass


class DeviceRefused(DeviceError):
    """The device refused a request by name (a text too long for its buffer, not UTF-8): sending it again changes nothing."""


class DeviceReset(DeviceError):
    """The device sent its boot banner in the middle of an exchange: its state is gone."""


class DeviceFault(DeviceError):
    """The device reported a HardFault and stopped."""


def _verified(lines: list[str]) -> list[str] | None:
    """The lines of a te- reply before its m-te-crc line, if their CRC-32 matches; else None."""
    for k, line in enumerate(lines):
        m = re.fullmatch(r"m-te-crc-\[([0-9a-f]{8})\]", line)
        if m:
            body = lines[:k]
            sent = "".join(l + "\r\n" for l in body).encode("ascii", "replace")
            return body if zlib.crc32(sent) == int(m.group(1), 16) else None
    return None


class _Refusals:
    """Counts replies of one request that refuse it by name (lines holding MARK); the REFUSALS_BELIEVED-th
    in a row raises DeviceRefused, saying SAYS and the device's words."""

    def __init__(self, mark: str, says: str):
        self.mark, self.says, self.seen = mark, says, 0

    def check(self, lines: list[str]) -> None:
        refused = [l for l in lines if self.mark in l]
        self.seen = self.seen + 1 if refused else 0
        if self.seen >= REFUSALS_BELIEVED:
            words = re.sub(r"^te-[a-z-]+: ", "", refused[0].split("e-[", 1)[-1]).rstrip("]")
            raise DeviceRefused(self.says + words)


def _flipped(a: str, b: str) -> bool:
    """Two damaged copies of one reply that differ as flipped bits leave them: same length, few bytes apart."""
    apart = sum(x != y for x, y in zip(a, b))
    return len(a) == len(b) and 0 < apart <= max(2, FEC_FLIPPED_SHARE * len(a))


def _ready_like(line: str) -> bool:
    """'m-ready' at the end of LINE with at most two characters damaged on the link."""
    tail = line[-7:]
    return len(tail) == 7 and sum(a != b for a, b in zip(tail, "m-ready")) <= 2


LAYERS_PER_REPLY = 4  # per-layer ticks asked for in one exchange on a clean link (one on a noisy one)
# Any command but an inference is answered within milliseconds (a te-put whose bytes stop coming
# fails after 100 ms): waiting longer for its first line only delays the retry of a damaged request.
# The wait starts at REPLY_START_S and then follows the device: ANSWER_MARGIN times the slowest
# whole answer seen, never below MIN_REPLY_WAIT_S; a wait that runs out doubles it again.
REPLY_START_S = 2.0
MIN_REPLY_WAIT_S = 0.1
ANSWER_MARGIN = 8
MAX_BACKOFF_S = 0.5
MIN_QUIET_S = 0.005  # the shortest silence that ends a resync


class Dut:
    """A device running tinyeff firmware, driven over DEVICE (anything with send/read_until/drain)."""

    def __init__(self, device, timeout: float = 30.0, retries: int = 8, quiet: float | None = None, retry_for: float = 120.0,
                 coding: bool = True, host_file: bool = True):
        """TIMEOUT: seconds to wait for a reply; a damaged exchange is sent again at least RETRIES
        times and for as long as RETRY_FOR seconds since its first try (a noisy link fails short
        exchanges often but cheaply: a count alone gives up on it too soon); QUIET: seconds of
        silence that end a resync (an emulator answers in microseconds, a board at 115200 baud in
        milliseconds; by default the device's own figure); CODING: code the link while it damages
        bytes (FEC_START; off: only retries, as a test of the retries themselves needs); HOST_FILE: inputs
        through the device's host input file where it has one (an emulator the harness started; off: every
        input byte over the link, as a real board takes it)."""
        quiet = quiet if quiet is not None else getattr(device, "quiet", 0.3)
        self.device, self.timeout, self.retries, self.quiet = device, timeout, retries, quiet
        self.retry_for = retry_for
        self._longest_s: dict[str, float] = {}  # the longest a te-run (te-raw-run, te-stream-push) took to answer so far
        self._reply_wait = REPLY_START_S  # how long to wait for any other exchange's reply to begin
        self._answer_s = 0.0  # the slowest whole answer to an exchange other than an inference so far
        self._put_chunk = PUT_CHUNK
        self._layers_per_reply = LAYERS_PER_REPLY
        self.attempts = 0  # tries the last exchange took
        self.retried = 0  # exchanges sent again after a corrupted or lost reply
        self.runs = 0  # inferences asked for with te-run: each one's number, so a retry never runs twice
        self.coding = coding
        self.host_file = getattr(device, "host_file", None) if host_file else None  # see put_input
        self.fec = False  # requests (and so replies) coded, each byte three times
        self.coded = 0  # exchanges answered while coded
        self._threes = self._differed = 0  # coded reply bytes since the link was last judged, and how many differed
        self._exchanges = self._coded_failed = 0  # exchanges begun; coded tries in a row whose reply came shifted
        self._shifted = False  # the last coded reply's threes were shifted by a lost or doubled byte
        self._plain_until, self._pause = 0, FEC_PAUSE  # no coding before that exchange; the next pause

    def wait_ready(self) -> list[str]:
        """The lines the device sends up to its first m-ready: its boot banner. A device that had
        booted before the harness connected (a board whose port opening does not reset it), or whose
        banner was lost while the port opened (pyserial's socket:// open empties its input), is
        asked instead after READY_PROBE_S of silence: an empty command answers m-ready."""
        first = min(self.timeout, READY_PROBE_S)
        try:
            return self._lines(self._read(READY, first))
        except DeviceTimeout:
            if self.timeout <= first:
                raise
        self.device.send(b"%")
        # the reply to an empty command is "e-[Empty command]", then m-ready: not part of any banner
        lines = [l for l in self._lines(self._read(READY, self.timeout - first)) if l != "e-[Empty command]"]
        # a device that was only slow to boot answers the probe too, just after its banner: drop that
        self._check_faults(self._lines(self.device.drain(self.quiet, limit=self.timeout)))
        return lines

    def _read(self, marker: bytes, timeout: float) -> bytes:
        try:
            return self.device.read_until(marker, timeout)
        except LinkClosed:
            # a fault report is the device's last word before an emulator exits: name it
            self._check_faults(self.device.last_lines())
            raise

    @staticmethod
    def _lines(raw: bytes) -> list[str]:
        return [l for l in raw.decode("ascii", "replace").replace("\r", "").split("\n") if l]

    def _check_faults(self, lines: list[str]) -> None:
        for line in lines:
            m = re.search(r"e-\[hardfault pc=(0x[0-9a-f]{8})\]", line)
            if m:
                raise DeviceFault(f"the device hit a HardFault at pc={m.group(1)} and stopped; "
                                  f"look the address up with arm-none-eabi-addr2line -e build/firmware.elf {m.group(1)}")
        if any(BANNER in line for line in lines):
            raise DeviceReset("the device reset during an exchange")

    def command(self, cmd: str) -> list[str]:
        """Send CMD, return the reply lines before m-ready; an e-[...] reply raises DeviceError."""
        self.device.send(cmd.encode("ascii") + b"%")
        lines = self._lines(self._read(READY, self.timeout))
        self._check_faults(lines)
        lines = lines[:-1]
        errors = [l for l in lines if l.startswith("e-[")]
        if errors:
            raise DeviceError(f"the device refused '{cmd}': {errors[0]}")
        return lines

    # ------------------------------------------------------------ exchanges that survive a noisy link

    def _read_reply(self, timeout: float) -> list[str]:
        """The lines of one reply: up to its m-ready, or, once the reply has begun, up to a silence of
        twice QUIET - the device sends a reply in one burst, so a damaged m-ready or line end costs a
        moment, not the whole TIMEOUT (which is for the wait before the first line: an inference). The
        reply still ends at TIMEOUT: a device that never stops sending lines cannot hold the harness."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            wait = max(deadline - time.monotonic(), 0.0)
            try:
                raw = self._read(b"\n", min(wait, 2 * self.quiet) if lines else wait)
            except DeviceTimeout:
                if lines:
                    return lines
                raise
            line = raw.decode("ascii", "replace").replace("\r", "").rstrip("\n")
            if line:
                lines.append(line)
            self._check_faults(lines)
            if _ready_like(line):
                return lines

    def _read_coded_reply(self, timeout: float) -> list[str]:
        """As _read_reply, for a coded reply: its bytes up to a coded line end at a time (a damaged one
        costs a silence), voted once m-ready is among them or the device has fallen silent."""
        raw = b""
        deadline = time.monotonic() + timeout
        while True:
            wait = max(deadline - time.monotonic(), 0.0)
            try:
                raw += self._read(b"\n\n\n", min(wait, 2 * self.quiet) if raw else wait)
                ended = False
            except DeviceTimeout:
                raw += self.device.drain(0.0, 0.0)  # what came without a whole line end
                if not raw:
                    raise
                ended = True
            self._check_faults(self._lines(raw))  # a reset device's banner and a fault report come plain
            voted, threes, differed = fec_decode(raw)
            lines = self._lines(voted)
            self._check_faults(lines)
            if ended or (lines and _ready_like(lines[-1])):
                self._threes, self._differed = self._threes + threes, self._differed + differed
                self._shifted = threes > 0 and differed >= FEC_SHIFTED_SHARE * threes
                return lines

    def resync(self) -> None:
        """Bring the device back to an empty command line: a lone '%' ends any half-received
        command (or is a byte of an unfinished te-put, which then fails its CRC or times out),
        and whatever it replies is read and dropped - until a silence of QUIET, or less where the
        device has shown it answers faster (twice its slowest whole answer)."""
        self.device.send(b"%")
        quiet = min(self.quiet, max(MIN_QUIET_S, 2 * self._answer_s)) if self._answer_s else self.quiet
        if self.fec:  # the '%' may be a byte of a coded request cut short: the device drops it after a silence
            quiet = max(quiet, FEC_DROP_S)
        self._check_faults(self._lines(self.device.drain(quiet, limit=self.timeout)))

    def _exchange(self, request: bytes, parse, what: str, timeout: float | None = None, attempts: int | None = None):
        """Send the te- REQUEST until its reply passes its CRC and PARSE accepts the lines
        (returns non-None); retried as __init__ says, or ATTEMPTS times at most. TIMEOUT: the wait
        for the reply to begin (an inference's), doubled after each try that went unanswered (up to
        the Dut's timeout); by default the device's usual answer time with a margin."""
        last: list[str] = []
        start = time.monotonic()
        attempt = silent = 0
        self._exchanges += 1
        flipped, damaged = False, None  # two damaged replies differed as flipped bits do; the last damaged reply
        while (attempt <= self.retries or time.monotonic() - start < self.retry_for) and attempt != attempts:
            if attempt:
                self.retried += 1
                if silent:  # no answer: a busy device gets a moment; a damaged answer is asked again at once
                    time.sleep(min(0.01 * 2 ** silent, MAX_BACKOFF_S))
                # also after a whole but damaged reply: a damaged request can draw two replies (its
                # te-put bytes read as a command), and the second must not pass for the next one's
                self.resync()
                self._choose_coding(flipped)
            attempt += 1
            self.attempts = attempt
            sent = time.monotonic()
            self._shifted = False
            self.device.send(fec_encode(request) if self.fec else request)
            read = self._read_coded_reply if self.fec else self._read_reply
            try:
                lines = read(timeout or min(self.timeout, self._reply_wait))
            except DeviceTimeout:
                last, silent = self.device.last_lines(), silent + 1
                if timeout is None:
                    self._reply_wait = min(self._reply_wait * 2, REPLY_START_S, self.timeout)
                else:  # a slow inference is answered in the end: te-run N asked again does not run it again
                    timeout = min(timeout * 2, max(timeout, self.timeout))
                continue
            body = _verified(lines)
            value = parse(body) if body is not None else None
            if value is not None:
                self._judge_link()
                if timeout is None:
                    self._answer_s = max(self._answer_s, time.monotonic() - sent)
                    self._reply_wait = min(max(MIN_REPLY_WAIT_S, ANSWER_MARGIN * self._answer_s), REPLY_START_S)
                return value
            last = lines
            text = "\n".join(lines)
            flipped = flipped or (damaged is not None and _flipped(damaged, text))
            damaged = text
        raise DeviceError(f"{what} failed {attempt} times in {time.monotonic() - start:.0f} s; the device's last lines were {last}; "
                          "check the link (baud rate, cable) and that the board runs this firmware")

    def _choose_coding(self, flipped: bool) -> None:
        """Before the next try of an exchange that has failed: code the link, or stop coding it. FLIPPED:
        two of its damaged replies differed only where bits were flipped."""
        if self.fec:
            self._coded_failed = self._coded_failed + 1 if self._shifted else 0
            if self._coded_failed >= FEC_SHIFTED_TRIES:
                self.fec = False
                self._plain_until, self._pause = self._exchanges + self._pause, 2 * self._pause
        elif self.coding and flipped and self._exchanges >= self._plain_until:
            self.fec, self._threes, self._differed, self._coded_failed = True, 0, 0, 0

    def _judge_link(self) -> None:
        """After an answered exchange: count it if coded, and go back to plain bytes on a link that has become clean."""
        if not self.fec:
            return
        self.coded += 1
        self._coded_failed = 0
        if self._threes >= FEC_CLEAN_THREES:
            if self._differed < FEC_CLEAN_SHARE * self._threes:
                self.fec = False
            self._threes = self._differed = 0

    def signature(self) -> Signature:
        """The model, runtime and board the firmware was built for; read until two readings agree."""
        def parse(lines):
            for line in lines:
                m = re.fullmatch(r"m-te-sig-\[([0-9a-f]{64})\]-\[(\w+)\]-\[([\w.-]+)\]", line)
                if m:
                    return Signature(*m.groups())
            return None

        return self._exchange(b"te-sig%", parse, "reading the firmware signature (te-sig)")

    def put_input(self, data: bytes, command: str = "te-put") -> None:
        """Load DATA into the device's input buffer (COMMAND te-raw-put: its front end's buffer) in CRC-checked
        binary chunks: smaller ones while the link damages them (a request must arrive whole), larger
        again once it does not. On a device with a host input file (an emulator the harness started, whose
        UART costs its host tens of microseconds per byte received) DATA goes into that file, and one
        short request (te-fput) has the device read it from there, checked by the same CRC."""
        if self.host_file is not None and data and self._put_from_host_file(data, command):
            return
        off = 0
        while off < len(data):
            chunk = data[off : off + self._put_chunk]
            request = f"{command} {off} {len(chunk)} {zlib.crc32(chunk):08x}%".encode() + chunk
            smallest = len(chunk) <= MIN_PUT_CHUNK
            refusals = _Refusals("past the end of the", "the device refused the upload: ")

            def parse(lines):
                if any("m-te-put-ok" in l for l in lines):
                    return True
                refusals.check(lines)
                return None

            try:
                self._exchange(request, parse, f"uploading input bytes {off}..{off + len(chunk)}", attempts=None if smallest else 2)
            except DeviceRefused:
                # the device read the chunk's bytes, which followed the refused request, as a command: end it
                self.resync()
                raise
            except DeviceError:
                if smallest:
                    raise
                self._put_chunk = max(self._put_chunk // 2, MIN_PUT_CHUNK)
                continue
            off += len(chunk)
            self._put_chunk = max(self._put_chunk // 2, MIN_PUT_CHUNK) if self.attempts > 1 else min(self._put_chunk * 2, MAX_PUT_CHUNK)

    def _put_from_host_file(self, data: bytes, command: str) -> bool:
        """put_input through the host input file; False (and the link from then on) when the firmware
        has no such file: generated before te-fput existed, or for a port without one (the Arduino
        core's, run on an emulated stand-in core)."""
        self.host_file.write_bytes(data)
        fput = command.replace("-put", "-fput")
        refusals = _Refusals(fput, "the device refused the upload: ")  # its usage line and its own errors name it

        def parse(lines):
            if any("m-te-put-ok" in l for l in lines):
                return True
            if any(f"Unknown command: {fput}" in l or "has no host input file" in l for l in lines):
                return False
            refusals.check(lines)
            return None

        request = f"{fput} 0 {len(data)} {zlib.crc32(data):08x}%".encode()
        if self._exchange(request, parse, f"loading {len(data)} input bytes from the host file ({fput})"):
            return True
        self.host_file = None
        return False

    def run(self, data: bytes, timeout: float | None = None) -> Inference:
        """One inference on DATA: upload, run, and the output bytes with the ticks it took. The request
        carries this inference's number, so asking again after a damaged reply does not run the model
        a second time (a model with state would move on)."""
        return self._run(data, "te-put", f"te-run {zlib.crc32(data):08x}", timeout)

    def run_raw(self, data: bytes, timeout: float | None = None) -> Inference:
        """One inference on a raw sample (a sentence as UTF-8, a clip as 16-bit PCM) through the device's
        front end, as run() does for an input tensor; the front end's ticks come apart from the model's."""
        return self._run(data, "te-raw-put", f"te-raw-run {len(data)} {zlib.crc32(data):08x}", timeout)

    def _run(self, data: bytes, put: str, run: str, timeout: float | None) -> Inference:
        def reply(line):
            m = re.fullmatch(r"m-te-run-\[([0-9a-f]*)\]-\[(\d+)\](?:-\[(\d+)\])?", line)
            return m and Inference(np.frombuffer(bytes.fromhex(m.group(1)), np.int8).copy(), int(m.group(2)),
                                   int(m.group(3)) if m.group(3) else None)

        return self._put_and_run(data, put, run, reply, timeout)

    def stream_start(self) -> int:
        """Begin a keyword stream on the device (one that has heard silence); returns its samples per hop."""
        def parse(lines):
            for line in lines:
                m = re.fullmatch(r"m-te-stream-started-\[(\d+)\]", line)
                if m:
                    return int(m.group(1))
            if any("Unknown command: te-stream-start" in l for l in lines):
                raise DeviceError("the firmware has no keyword stream; generate the project with --frontend RUN from "
                                  "a keyword classifier's run")
            return None

        return self._exchange(b"te-stream-start%", parse, "starting a keyword stream (te-stream-start)")

    def stream_push(self, data: bytes, n_classes: int, timeout: float | None = None) -> StreamPush:
        """Whole hops of 16-bit PCM DATA into the device's stream: the outputs of the inferences it ran and
        the keywords it reported. Numbered like run(), so a push asked again is not heard twice."""
        def reply(line):
            m = re.fullmatch(r"m-te-stream-\[(\d+)\]-\[([0-9a-f]*)\]-\[([\d.,]*)\]-\[(\d+)\]-\[(\d+)\]", line)
            if not m or len(m.group(2)) % (2 * n_classes):
                return None
            outputs = np.frombuffer(bytes.fromhex(m.group(2)), np.int8).reshape(-1, n_classes).copy()
            reports = tuple(tuple(int(v) for v in r.split(".")) for r in m.group(3).split(",") if r)
            return StreamPush(int(m.group(1)), outputs, reports, int(m.group(4)), int(m.group(5)))

        return self._put_and_run(data, "te-raw-put", f"te-stream-push {len(data)} {zlib.crc32(data):08x}", reply, timeout)

    def _put_and_run(self, data: bytes, put: str, run: str, reply, timeout: float | None):
        """Upload DATA with PUT, then send RUN numbered (the device answers a number it has run with the
        same reply again); REPLY turns a line into the result or None. A device whose buffer does not hold
        what was sent (its CRC differs) gets the upload again."""
        self.runs += 1
        request = f"{run} {self.runs % 1_000_000_000}%".encode()
        name = run.split()[0]
        refusals = _Refusals(f"e-[{name}: ", "the device refused the sample: ")

        def parse(lines):
            for line in lines:
                value = reply(line)
                if value:
                    return value
            # the input on the device is not what was sent (a chunk went to the wrong offset, or
            # the request itself was damaged): upload again rather than retry the same request
            if any(f"{name} input CRC" in l for l in lines):
                return _STALE
            # a sample the device refuses by name (empty, too long, not UTF-8) is refused again however often it is sent
            refusals.check(lines)
            return None

        for _ in range(self.retries + 1):
            self.put_input(data, put)
            # until one such command has answered, the whole TIMEOUT (REPLY_START_S at least); then a few
            # times the longest seen, doubled while unanswered
            longest = self._longest_s.get(name, 0.0)
            wait = timeout or min(self.timeout, max(REPLY_START_S, 4 * longest))
            started = time.monotonic()
            result = self._exchange(request, parse, f"running {name}", wait)
            if result is not _STALE:
                self._longest_s[name] = max(longest, time.monotonic() - started)
                return result
            self.retried += 1
        raise DeviceError(f"the device's input never matched the {len(data)} bytes sent after {self.retries + 1} uploads; "
                          "check the link")

    # ------------------------------------------------------------ MLPerf Tiny style commands

    def load(self, data: bytes) -> None:
        self.command(f"db load {len(data)}")
        text = data.hex()
        for i in range(0, len(text), HEX_PER_COMMAND):
            self.command(f"db {text[i : i + HEX_PER_COMMAND]}")

    def infer(self, n: int = 1, warmup: int = 0) -> tuple[int, list[str]]:
        """Run N inferences after WARMUP; (microseconds between the two laps, reply lines)."""
        lines = self.command(f"infer {n} {warmup}")
        laps = [int(l.rsplit("-", 1)[1]) for l in lines if l.startswith("m-lap-us-")]
        if len(laps) != 2:
            raise DeviceError(f"'infer' replied without two m-lap-us lines: {lines}")
        return laps[1] - laps[0], lines

    def output(self) -> np.ndarray:
        """The output bytes of the last inference (te-out)."""
        def parse(lines):
            for line in lines:
                m = re.fullmatch(r"m-te-out-\[([0-9a-f]*)\]", line)
                if m:
                    return np.frombuffer(bytes.fromhex(m.group(1)), np.int8).copy()
            return None
        return self._exchange(b"te-out%", parse, "reading the output (te-out)")

    def timer(self) -> tuple[str, int, int]:
        """The device timer's name and rate, and how many layers it timed in the last inference."""
        return self._layers(0, 0)[0]

    def layer_ticks(self) -> list[int]:
        """The ticks each layer took in the last inference, up to LAYERS_PER_REPLY layers per exchange
        (one while the link damages replies): a reply's CRC fails more often the longer it is, so a
        model's worth in one would rarely pass on a noisy link."""
        timed = self.timer()[2]
        ticks: list[int] = []
        while len(ticks) < timed:
            ticks += self._layers(len(ticks), min(self._layers_per_reply, timed - len(ticks)))[1]
            self._layers_per_reply = 1 if self.attempts > 1 else min(self._layers_per_reply * 2, LAYERS_PER_REPLY)
        return ticks

    def _layers(self, first: int, count: int) -> tuple[tuple[str, int, int], list[int]]:
        def parse(lines):
            head = [m for m in (re.fullmatch(r"m-te-timer-\[(\w+)\]-hz-(\d+)-layers-(\d+)", l) for l in lines) if m]
            rows = [m for m in (re.fullmatch(r"m-te-layer-(\d+)-(\d+)", l) for l in lines) if m]
            if not head or [int(m.group(1)) for m in rows] != list(range(first, first + count)):
                return None
            return (head[0].group(1), int(head[0].group(2)), int(head[0].group(3))), [int(m.group(2)) for m in rows]
        return self._exchange(f"te-layers {first} {count}%".encode(), parse,
                              f"reading per-layer ticks (te-layers {first} {count})")

    def memory(self) -> "DeviceMemory":
        """The model's arena, the part of it in use, and the stack's painted high-water mark (te-mem)."""
        def parse(lines):
            for line in lines:
                m = re.fullmatch(r"m-te-mem-arena-(\d+)-used-(\d+)-stack-(\d+)", line)
                if m:
                    return DeviceMemory(*map(int, m.groups()))
            return None
        return self._exchange(b"te-mem%", parse, "reading memory use (te-mem)")
