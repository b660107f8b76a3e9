"""The harness against devices that misbehave, over a real TCP serial link (pyserial socket://)."""

from __future__ import annotations

import random
import re
import socket
import threading
import time
import zlib

import numpy as np
import pytest

from tinyeff.errors import TinyeffError
from tinyeff.harness.device import DeviceTimeout, SerialDevice
from tinyeff.harness.dut import READY_PROBE_S, DeviceError, DeviceRefused, Dut, _flipped, _ready_like, _verified


class FakeBoardEnd:
    """The far end of a socket serial link that sends SEND (bytes, or a callable per 10 ms)."""

    def __init__(self, send):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.stop = False
        threading.Thread(target=self._serve, args=(send,), daemon=True).start()

    def _serve(self, send):
        conn, _ = self.server.accept()
        with conn:
            conn.settimeout(0.01)
            while not self.stop:
                try:
                    conn.recv(4096)
                except (TimeoutError, OSError):
                    pass
                data = send() if callable(send) else send
                if data:
                    try:
                        conn.sendall(data)
                    except OSError:
                        return
                send = send if callable(send) else b""

    def close(self):
        self.stop = True
        self.server.close()


def test_a_silent_device_times_out_with_a_clear_message():
    end = FakeBoardEnd(b"m-init-done\r\n")
    try:
        with SerialDevice(end.url) as device:
            t = time.monotonic()
            with pytest.raises(DeviceTimeout, match=r"sent no 'm-ready' within .*last lines were \['m-init-done'\]"):
                Dut(device, timeout=0.5).wait_ready()
            assert time.monotonic() - t < 3
    finally:
        end.close()


@pytest.mark.parametrize(("call", "what", "retried"), [
    (lambda dut: dut.signature(), "reading the firmware signature (te-sig)", 1),
    (lambda dut: dut.output(), "reading the output (te-out)", 1),
    (lambda dut: dut.memory(), "reading memory use (te-mem)", 1),
    (lambda dut: dut.timer(), "reading per-layer ticks (te-layers 0 0)", 1),
    # a chunk that fails twice is halved (64, 32, 16 bytes) before the smallest gets every retry
    (lambda dut: dut.put_input(bytes(300)), "uploading input bytes 0..8", 4),
    (lambda dut: dut.run(bytes(4)), "uploading input bytes 0..4", 1),
    (lambda dut: dut.stream_start(), "starting a keyword stream (te-stream-start)", 1),
])
def test_an_exchange_a_device_never_answers_names_what_it_was_doing(call, what, retried):
    end = FakeBoardEnd(b"")
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.2, retries=1, quiet=0.05, retry_for=0)
            with pytest.raises(DeviceError, match=rf"^{re.escape(what)} failed 2 times in [0-2] s; the device's last lines were \[\]; "
                                                  "check the link"):
                call(dut)
            assert dut.retried == retried
    finally:
        end.close()


def test_an_exchange_whose_replies_stay_damaged_quotes_the_last_one():
    damaged = b"m-te-sig-[00]\r\nm-te-crc-[00000000]\r\nm-ready\r\n"
    end = ScriptedBoardEnd(lambda request, n: damaged)
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.3, retries=1, quiet=0.02, retry_for=0, coding=False)
            with pytest.raises(DeviceError) as e:
                dut.signature()
        assert str(e.value).startswith("reading the firmware signature (te-sig) failed 2 times in 0 s; the device's last "
                                       "lines were ['m-te-sig-[00]', 'm-te-crc-[00000000]', 'm-ready']; check the link"), e.value
    finally:
        end.close()


def _reply(line: bytes) -> bytes:
    """LINE as a device sends a te- reply: the line, its CRC-32, m-ready."""
    return line + b"\r\nm-te-crc-[%08x]\r\nm-ready\r\n" % zlib.crc32(line + b"\r\n")


class SocketBoardEnd:
    """The far end of a socket serial link: a local server whose one connection _serve(*ARGS) answers."""

    def __init__(self, *args):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, args=args, daemon=True).start()

    def close(self):
        self.server.close()


class ListeningBoardEnd(SocketBoardEnd):
    """The far end of a socket serial link that answers nothing and keeps what it receives."""

    def __init__(self):
        self.received = b""
        self.hung_up = threading.Event()  # the harness closed the link: RECEIVED is all it sent
        super().__init__()

    def _serve(self):
        conn, _ = self.server.accept()
        with conn:
            while chunk := conn.recv(4096):
                self.received += chunk
        self.hung_up.set()


@pytest.mark.parametrize(("timeout", "probed"), [(READY_PROBE_S, False), (READY_PROBE_S + 1, True)])
def test_a_silent_device_is_asked_for_m_ready_only_while_its_timeout_lasts(timeout, probed):
    """wait_ready listens READY_PROBE_S, then asks (an empty command) for what is left of TIMEOUT: none
    left, nothing is sent; either way it gives up at TIMEOUT, not later."""
    end = ListeningBoardEnd()
    try:
        with SerialDevice(end.url) as device:
            t = time.monotonic()
            with pytest.raises(DeviceTimeout):
                Dut(device, timeout=timeout).wait_ready()
            assert timeout - 0.1 < time.monotonic() - t < timeout + 0.7
        assert end.hung_up.wait(5) and end.received == (b"%" if probed else b"")
    finally:
        end.close()


@pytest.mark.parametrize(("line", "ready"), [
    ("m-ready", True), ("\x00\x17m-ready", True),  # after bytes of noise
    ("m-reaDy", True), ("n-reaDy", True),  # two characters damaged on the link
    ("n-reaDY", False), ("m-read", False), ("m-ready ", False), ("-ready", False),
])
def test_a_ready_line_is_m_ready_at_its_end_with_two_characters_damaged_at_most(line, ready):
    assert _ready_like(line) is ready


class AckingBoardEnd(SocketBoardEnd):
    """The far end of a socket serial link that takes every upload (m-te-put-ok) and answers any other
    request with ANSWER (a reply line), or not at all."""

    def __init__(self, answer: bytes | None = None):
        self.puts = 0
        super().__init__(answer)

    def _serve(self, answer):
        conn, _ = self.server.accept()
        with conn:
            seen = b""
            while chunk := conn.recv(4096):
                seen += chunk
                if b"put " in seen:
                    self.puts += 1
                    conn.sendall(_reply(b"m-te-put-ok"))
                    seen = b""
                elif answer and b"%" in seen:
                    conn.sendall(_reply(answer))
                    seen = b""


@pytest.mark.parametrize(("call", "name"), [
    (lambda dut: dut.run(bytes(4), timeout=0.3), "te-run"),
    (lambda dut: dut.run_raw(bytes(4), timeout=0.3), "te-raw-run"),
    (lambda dut: dut.stream_push(bytes(4), 2, timeout=0.3), "te-stream-push"),
])
def test_an_inference_waits_as_long_as_its_caller_says(call, name):
    """The timeout given to run, run_raw or stream_push bounds the wait for the inference's reply (a
    stream or a slow front end asks for more than the default, a caller in a hurry for less): here
    0.3 s a try against the Dut's 10 s and the 2 s the first reply of a kind gets otherwise."""
    end = AckingBoardEnd()
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=10, retries=1, quiet=0.05, retry_for=0, host_file=False)
            t = time.monotonic()
            with pytest.raises(DeviceError, match=rf"^running {name} failed 2 times"):
                call(dut)
            assert time.monotonic() - t < 3  # two tries of 0.3 s and their resyncs; the 2 s default would take 4 and more
    finally:
        end.close()


def test_a_stream_push_reply_is_read_field_by_field():
    """m-te-stream-[hops]-[outputs, hex]-[reports: hops.class, comma-separated]-[model ticks]-[front-end ticks]."""
    end = AckingBoardEnd(b"m-te-stream-[12]-[0102fffe]-[3.1,17.0]-[345]-[67]")
    try:
        with SerialDevice(end.url) as device:
            push = Dut(device, timeout=2, retries=1, quiet=0.05, retry_for=0, host_file=False).stream_push(bytes(4), 2)
    finally:
        end.close()
    assert (push.hops, push.outputs.tolist(), push.reports, push.ticks, push.frontend_ticks) == \
        (12, [[1, 2], [-1, -2]], ((3, 1), (17, 0)), 345, 67)
    assert push.outputs.dtype == np.int8


def test_a_stream_push_reply_whose_outputs_are_not_whole_inferences_is_not_taken():
    """Three output bytes for two classes: a damaged reply, asked again, never taken for an answer."""
    end = AckingBoardEnd(b"m-te-stream-[12]-[010203]-[]-[345]-[67]")
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.3, retries=1, quiet=0.05, retry_for=0, host_file=False)
            with pytest.raises(DeviceError, match="^running te-stream-push failed 2 times"):
                dut.stream_push(bytes(4), 2, timeout=0.3)
    finally:
        end.close()


class CodedBoardEnd(SocketBoardEnd):
    """The far end of a coded link (each byte three times): answers a coded request after DELAY seconds
    with ANSWER as a coded te- reply, its last line end left out when CUT, silent for PAUSE seconds after
    ANSWER's line; or with the bytes RAW as they are."""

    def __init__(self, answer: bytes, delay: float, cut: bool = False, raw: bytes | None = None, pause: float = 0.0):
        reply = _reply(answer)[:-2] if cut else _reply(answer)
        coded = np.repeat(np.frombuffer(reply, np.uint8), 3).tobytes() if raw is None else raw
        super().__init__(coded, delay, 3 * (len(answer) + 2), pause)

    def _serve(self, coded, delay, line_end, pause):
        conn, _ = self.server.accept()
        with conn:
            seen = b""
            while chunk := conn.recv(4096):
                seen += chunk
                if b"%%%" in seen:
                    time.sleep(delay)
                    conn.sendall(coded[:line_end])
                    time.sleep(pause)
                    conn.sendall(coded[line_end:])
                    seen = b""


SIGNATURE = b"m-te-sig-[" + b"ab" * 32 + b"]-[compiled]-[qemu-mps2-an386]"


@pytest.mark.parametrize(("delay", "cut"), [(0.5, False), (0.0, True)])
def test_a_coded_reply_is_awaited_whole_and_a_cut_one_ends_at_a_silence(delay, cut):
    """On a coded link the first bytes of a reply get the whole wait (an inference takes its time: here
    0.5 s against a silence of 0.1 s), and once a reply has begun a silence of twice QUIET ends it (its
    last line end lost: read in 0.1 s, not the rest of the wait)."""
    end = CodedBoardEnd(SIGNATURE, delay, cut)
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=3, retries=0, quiet=0.05, retry_for=0)
            dut.fec = True
            t = time.monotonic()
            assert dut.signature().sha256 == "ab" * 32
            assert time.monotonic() - t < delay + 2.0 and dut.retried == 0  # a silence as long as the wait: 3 s and more
    finally:
        end.close()


def test_a_reply_line_keeps_every_character_but_its_line_end():
    """The CRC covers each line as sent: trailing spaces and letters are the line's (a harness that
    stripped them would find every such reply damaged)."""
    body = SIGNATURE + b"\r\nm-note \r\nm-noteX"
    end = ScriptedBoardEnd(lambda request, n: _reply(body))
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=1, retries=0, quiet=0.05, retry_for=0)
            assert dut.signature().sha256 == "ab" * 32
    finally:
        end.close()


class PausingBoardEnd(SocketBoardEnd):
    """The far end of a plain link that answers each request with ANSWER as a te- reply, silent for PAUSE
    seconds after ANSWER's line."""

    def __init__(self, answer: bytes, pause: float):
        super().__init__(_reply(answer), len(answer) + 2, pause)

    def _serve(self, reply, line_end, pause):
        conn, _ = self.server.accept()
        with conn:
            while conn.recv(4096):
                conn.sendall(reply[:line_end])
                time.sleep(pause)
                conn.sendall(reply[line_end:])


@pytest.mark.parametrize("coded", [True, False])
@pytest.mark.parametrize(("pause", "whole"), [(0.6, True), (1.25, False)])
def test_a_reply_that_falls_silent_for_twice_quiet_has_ended(coded, pause, whole):
    """Once a reply's first line has come, a silence of 2 x QUIET (1 s here) ends it, coded or plain: a
    pause of 1.25 s cuts it before its CRC line (the exchange fails, not retried here); one of 0.6 s does not."""
    end = CodedBoardEnd(SIGNATURE, 0.0, pause=pause) if coded else PausingBoardEnd(SIGNATURE, pause)
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=5, retries=0, quiet=0.5, retry_for=0)
            dut.fec = coded
            if whole:
                assert dut.signature().sha256 == "ab" * 32
            else:
                with pytest.raises(DeviceError, match=r"^reading the firmware signature \(te-sig\) failed 1 times"):
                    dut.signature()
    finally:
        end.close()


def _threes(n: int, differing: int) -> bytes:
    """N threes of a coded byte, the middle copy of the first DIFFERING of them changed."""
    t = bytearray(b"aaa" * n)
    t[1:3 * differing:3] = b"b" * differing
    return bytes(t)


@pytest.mark.parametrize(("raw", "shifted"), [
    (_threes(10, 3), True),  # FEC_SHIFTED_SHARE (0.3) of its threes differ: bytes lost or doubled shifted them
    (_threes(10, 2), False),  # fewer: damage that coding outvotes
    (_threes(1, 1), True),
    (b"aa", False),  # not one whole three: nothing to judge by
])
def test_a_coded_link_whose_replies_come_shifted_three_times_goes_back_to_plain_bytes(raw, shifted):
    """Bytes a link loses or doubles shift every three after them, and coding three times the bytes
    only gives such a link more to lose: after FEC_SHIFTED_TRIES (3) shifted replies in a row the harness
    goes back to plain bytes; replies whose copies differ in fewer threes keep the link coded."""
    end = CodedBoardEnd(b"", 0.0, raw=raw)
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.3, retries=3, quiet=0.05, retry_for=0)
            dut.fec = True
            with pytest.raises(DeviceError, match=r"^reading the firmware signature \(te-sig\) failed 4 times"):
                dut.signature()
            assert (dut.fec, dut.retried) == (not shifted, 3)
    finally:
        end.close()


def test_a_coded_request_a_device_never_answers_waits_its_timeout_and_no_more():
    end = FakeBoardEnd(b"")
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.3, retries=1, quiet=0.05, retry_for=0)
            dut.fec = True
            t = time.monotonic()
            with pytest.raises(DeviceError, match=r"^reading the firmware signature \(te-sig\) failed 2 times"):
                dut.signature()
            # two waits of 0.3 s and a resync between them; a wait of a second at least would take 2 s and more
            assert time.monotonic() - t < 1.5
    finally:
        end.close()


def test_a_host_file_load_the_device_never_answers_names_what_it_was_doing(tmp_path):
    """An emulator's harness writes the input into the device's host file and asks it to load it (te-fput)."""
    end = FakeBoardEnd(b"")
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.2, retries=1, quiet=0.05, retry_for=0)
            dut.host_file = tmp_path / "input.bin"
            with pytest.raises(DeviceError, match=r"^loading 4 input bytes from the host file \(te-fput\) failed 2 times"):
                dut.put_input(b"\x01\x02\x03\x04")
            assert dut.host_file.read_bytes() == b"\x01\x02\x03\x04"
    finally:
        end.close()


class ScriptedBoardEnd(SocketBoardEnd):
    """The far end of a socket serial link that answers each request (the text before its '%'; a lone '%'
    is a resync) with the bytes ANSWER(request, n) returns, n counting the requests answered so far."""

    def __init__(self, answer):
        self.requests: list[str] = []
        super().__init__(answer)

    def _serve(self, answer):
        conn, _ = self.server.accept()
        with conn:
            seen = b""
            while chunk := conn.recv(4096):
                seen += chunk
                while b"%" in seen:
                    request, _, seen = seen.partition(b"%")
                    if request.strip():
                        self.requests.append(request.decode())
                        conn.sendall(answer(request.decode(), len(self.requests) - 1))


def _uploads_device(lost: set[int]):
    """Takes every upload, except that te-put k (counted from 0) in LOST gets no answer (its bytes went
    astray); the bytes of an unanswered upload, ended by the harness's resync, get none either."""
    puts = []

    def answer(request, n):
        if "te-put" not in request:
            return b""
        puts.append(request)
        return b"" if len(puts) - 1 in lost else _reply(b"m-te-put-ok")
    return answer


@pytest.mark.parametrize(("lost", "sent"), [
    # on a clean link each chunk twice the last, up to MAX_PUT_CHUNK
    ((), [(0, 64), (64, 128), (192, 256), (448, 512), (960, 1024), (1984, 1016)]),
    # a chunk that had to be sent again: the next is half as long; clean again, twice as long
    ({1}, [(0, 64), (64, 128), (64, 128), (192, 64), (256, 128), (384, 256), (640, 512), (1152, 1024), (2176, 824)]),
    # a chunk lost twice is not sent a third time: halved, at the same offset
    ({1, 2}, [(0, 64), (64, 128), (64, 128), (64, 64), (128, 128), (256, 256), (512, 512), (1024, 1024), (2048, 952)]),
])
def test_uploads_go_in_chunks_that_shrink_while_the_link_loses_them_and_grow_while_it_does_not(lost, sent):
    end = ScriptedBoardEnd(_uploads_device(set(lost)))
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=5, retries=3, quiet=0.05, retry_for=0, host_file=False)
            dut.put_input(b"\x01" * 3000)  # no '%' in the data: the scripted end splits requests there
        puts = [tuple(int(v) for v in m.groups()) for r in end.requests if (m := re.search(r"te-put (\d+) (\d+) ", r))]
        assert puts == sent
    finally:
        end.close()


def _layers_device(timed: int, damaged: set[int]):
    """Answers te-layers F C with the timer's line and layers F..F+C-1 of TIMED; request n in DAMAGED with a wrong CRC."""
    def answer(request, n):
        first, count = (int(v) for v in re.fullmatch(r"te-layers (\d+) (\d+)", request).groups())
        body = b"m-te-timer-[systick]-hz-1000-layers-%d" % timed + b"".join(b"\r\nm-te-layer-%d-%d" % (i, 100 + i)
                                                                          for i in range(first, first + count))
        reply = _reply(body)
        return reply.replace(b"m-te-crc-[", b"m-te-crc-[0") if n in damaged else reply
    return answer


@pytest.mark.parametrize(("damaged", "asked"), [
    # four layers a reply on a clean link, the last reply as many as are left
    ((), [(0, 0), (0, 4), (4, 4), (8, 4), (12, 4), (16, 2)]),
    # one at a time after a reply had to be asked again, then twice as many each clean reply
    ({2}, [(0, 0), (0, 4), (4, 4), (4, 4), (8, 1), (9, 2), (11, 4), (15, 3)]),
])
def test_per_layer_ticks_are_asked_for_in_fewer_layers_a_reply_while_the_link_damages_them(damaged, asked):
    end = ScriptedBoardEnd(_layers_device(18, set(damaged)))
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.5, retries=2, quiet=0.05, retry_for=0)
            assert dut.layer_ticks() == [100 + i for i in range(18)]
            assert [tuple(int(v) for v in r.split()[1:]) for r in end.requests] == asked
    finally:
        end.close()


def test_a_device_whose_input_never_matches_the_upload_gets_it_again_and_then_says_so():
    """A te-run answered 'input CRC' found other bytes than were sent (a chunk went astray): the input
    is uploaded again, retries + 1 times in all, and then the link is named."""
    end = AckingBoardEnd(b"e-[te-run input CRC 00000000, not the one asked for]")
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.3, retries=2, quiet=0.05, retry_for=0, host_file=False)
            with pytest.raises(DeviceError, match=r"^the device's input never matched the 4 bytes sent after 3 uploads; check the link$"):
                dut.run(bytes(4))
            assert (end.puts, dut.retried) == (3, 3)
    finally:
        end.close()


def _slow_inferences(delays: list[float]):
    """Takes every upload, and runs inference k in DELAYS[k] seconds; a run asked again is answered at once."""
    ran: set[str] = set()

    def answer(request, n):
        if "te-put" in request:
            return _reply(b"m-te-put-ok")
        number = request.split()[-1]
        if number not in ran:
            time.sleep(delays[len(ran)])
            ran.add(number)
        return _reply(b"m-te-run-[00]-[5]")
    return answer


@pytest.mark.parametrize(("delays", "retried"), [
    ([2.3], 1),  # the first inference of a kind gets REPLY_START_S (2 s), then is asked again
    ([0.6, 2.2], 0),  # then 4 times the longest seen: 2.4 s
    ([0.6, 2.7], 1),
])
def test_an_inference_waits_for_as_long_as_the_slowest_before_it_took(delays, retried):
    """Commands are answered in milliseconds and soon get 0.1 s; an inference gets 2 s the first time and
    then four times the longest one of its kind took (a larger model, a slower board), before it is asked again."""
    end = ScriptedBoardEnd(_slow_inferences(delays))
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=10, retries=3, quiet=0.05, retry_for=0, host_file=False)
            assert [dut.run(bytes(4)).ticks for _ in delays] == [5] * len(delays)
            assert dut.retried == retried
    finally:
        end.close()


def test_a_resync_listens_for_quiet_until_the_device_has_answered_then_for_twice_its_slowest_answer():
    """Before any answer, a resync drains until QUIET (2 s) of silence; once the device has answered in
    0.5 s, until twice that (1 s): long enough for a late reply, no longer."""
    def answer(request, n):
        time.sleep(0.5)
        return _reply(SIGNATURE)
    end = ScriptedBoardEnd(answer)
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=10, retries=0, quiet=2.0, retry_for=0, host_file=False)
            t = time.monotonic()
            dut.resync()
            first = time.monotonic() - t
            assert dut.signature().sha256 == "ab" * 32
            t = time.monotonic()
            dut.resync()
            later = time.monotonic() - t
        assert 2.0 <= first < 2.4 and 1.0 <= later < 1.3, (first, later)
    finally:
        end.close()


def test_a_device_that_does_not_answer_is_asked_again_after_a_wait_that_doubles():
    """Each unanswered try is followed by a pause before the next, 10 ms doubling up to MAX_BACKOFF_S
    (0.5 s): a busy device gets a moment, a dead one is not hammered. Six silent tries, then an answer;
    the gaps between tries grow by the pauses (20, 40, 80, 160, 320, 500 ms) over a constant wait."""
    asked: list[float] = []

    def answer(request, n):
        asked.append(time.monotonic())
        return _reply(SIGNATURE) if n >= 6 else b""
    end = ScriptedBoardEnd(answer)
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.05, retries=8, quiet=0.02, retry_for=0, host_file=False, coding=False)
            assert dut.signature().sha256 == "ab" * 32
        gaps = np.diff(asked)[:6]
        assert gaps[3] - gaps[0] < 0.3 and gaps[5] - gaps[0] > 0.3, gaps  # 0.14 s and 0.48 s
    finally:
        end.close()


def _coded(reply: bytes, flip: int | None = None) -> bytes:
    """REPLY coded (each byte three times), the middle copy of byte FLIP changed."""
    coded = bytearray(np.repeat(np.frombuffer(reply, np.uint8), 3).tobytes())
    if flip is not None:
        coded[3 * flip + 1] ^= 0x04
    return bytes(coded)


def test_a_coded_link_counts_shifted_replies_from_its_last_answer():
    """Answered once, then shifted twice: two of the three shifted tries in a row that end coding."""
    end = ScriptedBoardEnd(lambda request, n: _coded(_reply(SIGNATURE)) if n == 0 else _threes(10, 3))
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.3, retries=2, quiet=0.05, retry_for=0)
            dut.fec = True
            assert dut.signature().sha256 == "ab" * 32
            with pytest.raises(DeviceError, match=r"^reading the firmware signature \(te-sig\) failed 3 times"):
                dut.signature()
            assert dut.fec
    finally:
        end.close()


def test_after_coding_fails_the_link_stays_plain_for_16_exchanges_then_32():
    """Plain replies come with flipped bits (coding would fix them), coded ones shifted (coding cannot):
    coding starts in the first exchange and ends in the second, after three shifted tries; it is tried
    again 16 exchanges later (exchange 18), ends in 19, and is next tried 32 exchanges later (51)."""
    kinds: list[str] = []

    def answer(request, n):
        kinds.append("coded" if "ttt" in request else "plain")  # a coded te-sig: each byte three times
        if "ttt" in request:
            return _threes(10, 3)
        flipped = bytearray(_reply(SIGNATURE))
        flipped[10 + n % 60] ^= 0x02  # one bit of the signature, after its CRC was taken
        return bytes(flipped)
    end = ScriptedBoardEnd(answer)
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.3, retries=3, quiet=0.02, retry_for=0, host_file=False)
            tries = []
            for exchange in range(1, 61):
                kinds.clear()
                with pytest.raises(DeviceError):
                    dut.signature()
                tries.append(list(kinds))
        assert [e for e, k in enumerate(tries, 1) if "coded" in k] == [1, 2, 18, 19, 51, 52]
        # a shifted reply is judged before its exchange's next try (an exchange's last try goes unjudged):
        # the first exchange's third, the second's first and second make three, and its third try is plain
        assert tries[:2] == [["plain", "plain", "coded", "coded"], ["coded", "coded", "plain", "plain"]]
    finally:
        end.close()


def test_a_coded_link_stays_coded_while_the_device_is_only_silent():
    """Only a shifted coded reply counts against coding; tries that go unanswered (a busy device) do not:
    four silent coded tries, and the fifth, still coded, is answered."""
    coded = []

    def answer(request, n):
        if "ttt" not in request:
            return b""
        coded.append(request)
        return _coded(_reply(SIGNATURE)) if len(coded) >= 5 else b""
    end = ScriptedBoardEnd(answer)
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.2, retries=5, quiet=0.02, retry_for=0, host_file=False)
            dut.fec = True
            assert dut.signature().sha256 == "ab" * 32
            assert dut.fec and len(coded) == 5 and dut.attempts == 5
    finally:
        end.close()


def _coded_outputs(sizes: list[int], differing: dict[int, int]):
    """Answers te-out request n with SIZES[n] zero bytes (the last size from then on), coded, the middle
    copy of its first DIFFERING[n] bytes changed (each three still votes the byte sent)."""
    def answer(request, n):
        coded = bytearray(_coded(_reply(b"m-te-out-[" + b"00" * sizes[min(n, len(sizes) - 1)] + b"]")))
        for i in range(differing.get(n, 0)):
            coded[3 * i + 1] ^= 0x04
        return bytes(coded)
    return answer


# A te-out reply of n bytes is 2n + 43 bytes, each a three on a coded link.
@pytest.mark.parametrize(("sizes", "differing", "replies"), [
    # 16 x 255 = 4080 threes, then 4335 at the 17th reply, one differing: the link has become clean, and
    # three times its bytes buy nothing
    ([106], {0: 1}, 17),
    # 14 x 255 + 2 x 263 = 4096 threes, 4 of them differing: under 0.1 %, judged clean at the 16th reply
    ([106] * 14 + [110] * 2 + [106], {0: 4}, 16),
    # 5 differing in the first 4096: not clean, and the count starts again from nothing
    ([106] * 14 + [110] * 2 + [106] * 14 + [110] * 2 + [106], {0: 5, 16: 4}, 32),
    # 15 x 255 + 1175 = 5000 threes, 5 differing: exactly 0.1 % is not under it; the next 4096 are
    ([106] * 15 + [566] + [106], {0: 5}, 16 + 17),
])
def test_a_coded_link_is_judged_clean_on_each_window_of_4096_threes_and_more(sizes, differing, replies):
    end = ScriptedBoardEnd(_coded_outputs(sizes, differing))
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.3, retries=0, quiet=0.05, retry_for=0)
            dut.fec = True
            answered = 0
            while dut.fec and answered < 100:
                assert dut.output().tolist() == [0] * sizes[min(answered, len(sizes) - 1)]
                answered += 1
            assert answered == replies
    finally:
        end.close()


def test_a_link_coded_after_flipped_replies_is_judged_on_the_threes_from_then_on():
    """Plain replies come with a bit flipped, so the first exchange's third try is coded; coded replies are
    whole, the first with 4 of its threes differing. The window counts from there: 14 x 255 + 525 = 4095
    threes in 15 replies is not yet 4096; the 16th makes 4350, 4 differing is under 0.1 %, plain again."""
    sizes, coded = [106] * 14 + [241] + [106], []

    def answer(request, n):
        if "ttt" not in request:  # plain: te-out with one bit flipped after its CRC was taken
            flipped = bytearray(_reply(b"m-te-out-[" + b"00" * 106 + b"]"))
            flipped[12 + n % 100] ^= 0x02
            return bytes(flipped)
        coded.append(request)
        return _coded_outputs(sizes, {0: 4})(request, len(coded) - 1)
    end = ScriptedBoardEnd(answer)
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.3, retries=3, quiet=0.05, retry_for=0, host_file=False)
            answered = 0
            while answered < 40:
                assert dut.output().tolist() == [0] * sizes[min(answered, len(sizes) - 1)]
                answered += 1
                if not dut.fec:
                    break
            assert (dut.attempts, answered, len(coded)) == (1, 16, 16)
    finally:
        end.close()


def _fput_device(replies: list[bytes]):
    """Answers the n-th te-fput with reply line n of REPLIES (the last one from then on)."""
    return lambda request, n: _reply(replies[min(n, len(replies) - 1)])


@pytest.mark.parametrize(("replies", "says", "attempts"), [
    # the device's words whole: the refusal's own brackets and its command's name taken off, nothing else
    ([b"e-[te-fput: no file e-[1].bin here]"], "no file e-[1].bin here", 3),
    ([b"e-[te-fput: longer than MAX]"], "longer than MAX", 3),
    ([b"usage: te-fput OFFSET LENGTH CRC"], "usage: te-fput OFFSET LENGTH CRC", 3),
    # three in a row: a reply between them that refuses nothing starts the count again
    ([b"e-[te-fput: no]", b"m-te-busy", b"e-[te-fput: no]"], "no", 5),
])
def test_a_refusal_is_believed_the_third_time_in_a_row_in_the_device_s_words(replies, says, attempts, tmp_path):
    end = ScriptedBoardEnd(_fput_device(replies))
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.3, retries=8, quiet=0.05, retry_for=0)
            dut.host_file = tmp_path / "input.bin"
            with pytest.raises(DeviceRefused) as e:
                dut.put_input(bytes(4))
            assert (str(e.value), dut.attempts) == (f"the device refused the upload: {says}", attempts)
    finally:
        end.close()


@pytest.mark.parametrize(("a", "b", "flipped"), [
    ("m-te-out-[0123456789abcdef]", "m-te-out-[0123456789abcdef]", False),  # the same: nothing flipped
    ("m-te-out-[0123456789abcdef]", "m-te-out-[0123456789abcdeF]", True),  # one character apart
    ("m-te-out-[0123456789abcdef]", "m-te-out-[01234567X9abcdeF]", True),  # two: at most max(2, len / 8)
    ("m-te-out-[0123]", "m-Te-out-[01X3]", True),
    ("m-te-out-[0123]", "m-Te-out-[0XX3]", False),  # three of 15: more than max(2, 15 / 8)
    ("m-te-out-[0123456789abcdef]", "m-te-out-[0123456789abcdef]x", False),  # a byte more: shifted, not flipped
])
def test_two_damaged_replies_differ_as_flipped_bits_when_the_same_length_and_a_few_characters_apart(a, b, flipped):
    assert _flipped(a, b) == flipped


def test_a_device_sending_garbage_fails_after_bounded_retries():
    rng = random.Random(0)
    end = FakeBoardEnd(lambda: bytes(rng.randrange(256) for _ in range(32)))
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.2, retries=2, quiet=0.05, retry_for=0)
            with pytest.raises(DeviceError, match="failed 3 times"):
                dut.signature()
            assert dut.retried == 2
    finally:
        end.close()


def test_the_retry_budget_users_get_is_eight_retries_and_then_two_minutes():
    """`tinyeff bench`, the pytest plugin and the search's latency bench build their Dut with its
    default budget: a damaged exchange is sent again 8 times at least (shown here with the time
    budget off), and for as long as retry_for seconds since its first try (its default is 120 s,
    shown here at 1.5 s with the count off)."""
    import inspect

    defaults = inspect.signature(Dut).parameters
    assert (defaults["retries"].default, defaults["retry_for"].default) == (8, 120.0)
    rng = random.Random(0)
    end = FakeBoardEnd(lambda: bytes(rng.randrange(256) for _ in range(32)))
    try:
        with SerialDevice(end.url) as device:
            dut = Dut(device, timeout=0.2, quiet=0.05, retry_for=0)
            with pytest.raises(DeviceError, match="failed 9 times"):
                dut.signature()
            assert dut.retried == 8
            dut = Dut(device, timeout=0.2, retries=0, quiet=0.05, retry_for=1.5)
            t = time.monotonic()
            with pytest.raises(DeviceError):
                dut.signature()
            assert time.monotonic() - t >= 1.5 and dut.retried >= 2
    finally:
        end.close()


def test_unopenable_port_is_one_sentence():
    with pytest.raises(TinyeffError, match="cannot open serial port 'socket://127.0.0.1:1'.*check the --port URL"):
        SerialDevice("socket://127.0.0.1:1")


def test_reply_crc_accepts_only_the_bytes_that_were_sent():
    import zlib

    body = ["m-te-mem-arena-2352-used-2352-stack-244"]
    crc = zlib.crc32(b"m-te-mem-arena-2352-used-2352-stack-244\r\n")
    assert _verified(body + [f"m-te-crc-[{crc:08x}]", "m-ready"]) == body
    assert _verified(["m-te-mem-arena-2353-used-2352-stack-244", f"m-te-crc-[{crc:08x}]"]) is None
    assert _verified(body) is None  # no CRC line: not verified


def test_an_infer_reply_without_its_two_laps_says_what_came():
    """The MLPerf 'infer' command times itself with two m-lap-us lines; a reply without them is named
    with the lines that did come, not taken as a zero-length inference."""
    end = FakeBoardEnd(b"m-lap-us-100\r\nm-ready\r\n")
    try:
        with SerialDevice(end.url) as device:
            with pytest.raises(DeviceError, match=r"^'infer' replied without two m-lap-us lines: \['m-lap-us-100'\]$"):
                Dut(device, timeout=2).infer(1)
    finally:
        end.close()


def test_a_pyserial_url_that_is_no_plain_socket_goes_through_pyserial():
    """socket://HOST:PORT is read with plain recv() calls; every other URL (a board's /dev/ttyACM0 here
    stands as pyserial's loop://, which hands back what is written) through pyserial, to the same reads."""
    device = SerialDevice("loop://", 115200)
    try:
        device.send(b"m-init-done\r\nm-ready\r\n")
        assert device.read_until(b"m-ready", 2) == b"m-init-done\r\nm-ready"
        assert device.drain(0.1, 1) == b"\r\n"
        with pytest.raises(DeviceTimeout):
            device.read_until(b"m-ready", 0.2)
    finally:
        device.close()
