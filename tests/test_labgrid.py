"""tinyeff bench on a labgrid board farm: a real labgrid-coordinator and exporter on this machine,
two emulated boards exported as places (tests/labgrid_lab.py), the firmware loaded through each
board's GDB server. The places are acquired, benched in parallel from one command and released;
a place someone else holds is refused with one sentence, or waited for."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from labgrid_lab import LabgridLab, free_port
from tinyeff.boards import get_board
from tinyeff.cli import main
from tinyeff.errors import TinyeffError
from tinyeff.generate import generate
from tinyeff.harness.bench import Project
from tinyeff.harness.farm import LabgridPlaces
from tinyeff.harness.flash import build
from tinyeff.harness.gdb_load import elf_segments

BOARD = "qemu-mps2-an386"


@pytest.fixture(scope="module")
def project(tiny_run, tmp_path_factory) -> Project:
    out = generate(tiny_run / "model.int8.tflite", BOARD, "compiled", tmp_path_factory.mktemp("lg") / BOARD)
    project = Project.load(out)
    build(project)
    return project


@pytest.fixture(scope="module")
def other_firmware(tiny_run, tmp_path_factory) -> Path:
    """Firmware made from another file of the tiny run's model (16 zero bytes appended: the same graph to
    TFLM, another SHA-256), for a farm board that runs something else than the project benched."""
    other = tmp_path_factory.mktemp("other-model") / "model.int8.tflite"
    data = bytearray((tiny_run / "model.int8.tflite").read_bytes())
    other.write_bytes(bytes(data) + b"\0" * 16)  # trailing bytes: the same model to TFLM, another file and SHA-256
    out = generate(other, BOARD, "compiled", tmp_path_factory.mktemp("lg-other") / BOARD)
    return build(Project.load(out))


@pytest.fixture(scope="module")
def lab(project, other_firmware, tmp_path_factory):
    lab = LabgridLab(tmp_path_factory.mktemp("lab"), get_board(BOARD), ["bench-a", "bench-b"],
                     running={"flashed-by-hand": project.elf, "runs-another-model": other_firmware})
    yield lab
    lab.close()


@pytest.mark.emulator
def test_two_places_bench_in_parallel_from_one_command(lab, project, tiny_run, tmp_path, capsys):
    """Both places acquired, loaded through their GDB servers (their QEMUs start with empty memory),
    benched sharing the samples, released: the outputs are the one-emulator run's, sample for sample."""
    common = ["bench", str(project.path), "--data", str(tiny_run), "--limit", "30", "--quiet"]
    assert main(common + ["--json", str(tmp_path / "one.json")]) == 0
    rc = main(common + ["--labgrid", "bench-a", "--labgrid", "bench-b", "--coordinator", lab.address,
                        "--json", str(tmp_path / "farm.json")])
    out = capsys.readouterr().out
    assert rc == 0, out
    one, farm = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "farm"))
    assert [(r["index"], r["output"]) for r in farm["results"]] == [(r["index"], r["output"]) for r in one["results"]]
    assert farm["exact_agreement"] == 1.0 and farm["latency_unit"] == "emulated instructions"
    tick = 1e9 / get_board(BOARD).clock_hz  # -icount: the same instructions, one timer tick apart at most
    assert all(abs(a["latency"] - b["latency"]) <= tick for a, b in zip(one["results"], farm["results"]))
    places = {d["url"].split(" ")[0]: d["samples"] for d in farm["devices"]}
    assert set(places) == {"bench-a", "bench-b"} and all(n > 0 for n in places.values())
    assert lab.holder("bench-a") is None and lab.holder("bench-b") is None  # released


@pytest.mark.emulator
def test_a_place_held_by_someone_else_is_refused_or_waited_for(lab, project, tiny_run, tmp_path, capsys):
    lab.client("-p", "bench-a", "acquire", user="colleague")
    common = ["bench", str(project.path), "--data", str(tiny_run), "--limit", "5", "--quiet",
              "--labgrid", "bench-a", "--coordinator", lab.address]
    try:
        assert main(common) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "'bench-a' is held by" in err and "/colleague" in err and "--labgrid-wait" in err
        assert lab.holder("bench-a").endswith("/colleague")  # refusing took nothing from its holder
        # the colleague releases it 2 s into a bench that waits up to 60 s
        threading.Timer(2.0, lab.client, ("-p", "bench-a", "release"), {"user": "colleague"}).start()
        assert main(common + ["--labgrid-wait", "60", "--json", str(tmp_path / "waited.json")]) == 0
        assert json.loads((tmp_path / "waited.json").read_text())["exact_agreement"] == 1.0
        assert lab.holder("bench-a") is None
    finally:
        lab.client("-p", "bench-a", "release", "--kick", check=False)


@pytest.mark.emulator
def test_places_that_cannot_be_used_are_named(lab):
    with pytest.raises(TinyeffError, match="has no place 'nowhere' \\(places: bench-a, bench-b, flashed-by-hand, runs-another-model\\)"):
        with LabgridPlaces(["nowhere"], lab.address):
            pass
    with pytest.raises(TinyeffError, match="given twice"):
        LabgridPlaces(["bench-a", "bench-a"], lab.address)
    assert lab.holder("bench-a") is None


@pytest.mark.emulator
def test_a_farm_bench_with_a_port_too_is_refused_and_releases_the_place(lab, project, tiny_run, capsys):
    rc = main(["bench", str(project.path), "--data", str(tiny_run), "--labgrid", "bench-a", "--coordinator", lab.address,
               "--port", "socket://127.0.0.1:1"])
    assert rc == 2 and "leave out --port, --jobs and --emulator" in capsys.readouterr().err
    assert lab.holder("bench-a") is None


@pytest.mark.emulator
def test_a_place_without_a_gdb_server_is_benched_as_flashed_and_checked(lab, project, tiny_run, tmp_path, capsys):
    """A place that exports only the board's UART is benched on the firmware it runs, when that is the
    project's model (SHA-256 on the device); a board running another model is refused with one sentence."""
    common = ["bench", str(project.path), "--data", str(tiny_run), "--limit", "5", "--coordinator", lab.address]
    assert main(common + ["--labgrid", "flashed-by-hand", "--json", str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["exact_agreement"] == 1.0
    capsys.readouterr()
    assert main(common + ["--labgrid", "runs-another-model", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "runs firmware for model" in err and "flash this project first" in err
    assert lab.holder("runs-another-model") is None and lab.holder("flashed-by-hand") is None


def test_an_unreachable_coordinator_is_one_sentence():
    with pytest.raises(TinyeffError, match="cannot reach the labgrid coordinator at 127.0.0.1:"):
        with LabgridPlaces(["bench-a"], f"127.0.0.1:{free_port()}"):
            pass


def test_a_file_that_is_no_firmware_is_refused(tmp_path):
    bad = tmp_path / "firmware.elf"
    bad.write_bytes(b"\x7fELF\x02\x01" + bytes(60))  # 64-bit
    with pytest.raises(TinyeffError, match="not a 32-bit little-endian ELF"):
        elf_segments(bad)
    with pytest.raises(TinyeffError, match="cannot read the firmware"):
        elf_segments(tmp_path / "missing.elf")


@pytest.mark.emulator
def test_a_user_test_runs_on_a_labgrid_place(lab, project, tiny_run, pytester):
    """The pytest plugin beside labgrid's own: --tinyeff-labgrid names the place, labgrid's
    --lg-coordinator the coordinator; the place is acquired for each test and released after."""
    pytester.makepyfile(f'''
def test_on_the_farm(tinyeff_device):
    result = tinyeff_device.bench(r"{tiny_run}", limit=10)
    assert result.exact_agreement == 1.0 and result.samples == 10
''')
    result = pytester.runpytest_subprocess("--tinyeff-project", str(project.path), "--tinyeff-labgrid", "bench-b",
                                           "--lg-coordinator", lab.address)
    result.assert_outcomes(passed=1)
    assert lab.holder("bench-b") is None


def test_the_readme_gives_the_farm_qemu_line_the_kit_makes():
    """The board-farm section's QEMU command is qemu_command's, so a farm's emulated boards are the
    boards the kit benches (same machine, -icount, semihosting)."""
    import re
    from pathlib import Path

    from tinyeff.harness.device import qemu_command

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    quoted = re.search(r"\n    (qemu-system-arm -M mps2-an386 .*?)\n\n", readme, re.S).group(1)
    words = quoted.replace("\\\n", " ").split()
    made = qemu_command(get_board(BOARD), 5001, gdb=5002, host="0.0.0.0")
    assert words == ["qemu-system-arm"] + made[1:]


def test_the_farm_extra_installs_labgrid():
    import tomllib
    from pathlib import Path

    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("labgrid") for d in extras["farm"]) and any(d.startswith("labgrid") for d in extras["test"])
