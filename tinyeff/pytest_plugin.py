"""pytest plugin: hardware-in-the-loop tests against a tinyeff firmware, on a board or an emulator.

Installed with the package (entry point ``pytest11``). A user's test reads::

    def test_accuracy_on_device(tinyeff_device):
        assert tinyeff_device.bench("runs/digits").accuracy >= 0.9

and CI runs ``pytest --tinyeff-project fw/ --tinyeff-port /dev/ttyACM0`` (a real board) or
``pytest --tinyeff-project model.int8.tflite --tinyeff-board qemu-mps2-an386`` (an emulated
board: the project is generated and built first), or ``pytest --tinyeff-project fw/
--tinyeff-labgrid PLACE --lg-coordinator HOST:PORT`` (a board of a labgrid farm, acquired for the
test, loaded through its GDB server and released after; ``--lg-coordinator`` is labgrid's own pytest
option, read from $LG_COORDINATOR when not given). Without a port or an emulated board the
tests that use ``tinyeff_device`` skip, saying why. The device is always released, also when
a test fails.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest


def pytest_addoption(parser) -> None:
    group = parser.getgroup("tinyeff", "tinyeff hardware-in-the-loop")
    group.addoption("--tinyeff-project", help="a project made by 'tinyeff generate', or an int8 .tflite to generate one from")
    group.addoption("--tinyeff-board", help="board id (checked against the project; needed to generate from a .tflite)")
    group.addoption("--tinyeff-port", help="serial port of a real board, as a pyserial URL")
    group.addoption("--tinyeff-emulator", choices=("qemu", "renode"), help="run on an emulator instead of a board")
    group.addoption("--tinyeff-labgrid", metavar="PLACE", help="a place of a labgrid farm (coordinator: labgrid's "
                    "--lg-coordinator or $LG_COORDINATOR), acquired for each test and released after")


def pytest_configure(config) -> None:
    for line in ("emulator: runs firmware in QEMU or Renode", "hardware: needs a real board on --tinyeff-port"):
        config.addinivalue_line("markers", line)


def pytest_collection_modifyitems(config, items) -> None:
    if config.getoption("--tinyeff-port") or config.getoption("--tinyeff-labgrid"):
        return
    skip = pytest.mark.skip(reason="needs a real board: pass --tinyeff-port (or --tinyeff-labgrid)")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


class TinyeffDevice:
    """A flashed device and the project it runs, for tests."""

    def __init__(self, project, device, dut):
        self.project, self.device, self.dut = project, device, dut

    def bench(self, data: str, limit: int | None = None, lang: str = "en"):
        """Run DATA's test split (a run directory or a dataset) on the device; a BenchResult."""
        from tinyeff.harness.bench import bench_inputs, run_bench

        x, y = bench_inputs(str(data), self.project.model, lang, limit=limit)
        return run_bench(self.project, [self.dut], x, y)

    def run(self, sample: bytes):
        """One inference on raw int8 input bytes: the device's output and ticks."""
        return self.dut.run(sample)


@pytest.fixture(scope="session")
def tinyeff_project(pytestconfig, tmp_path_factory) -> Path:
    """The project under test: --tinyeff-project, generated for --tinyeff-board when it is a .tflite.
    Override this fixture in a conftest.py to build the project another way."""
    from tinyeff.generate import generate

    given = pytestconfig.getoption("--tinyeff-project")
    if not given:
        pytest.skip("no firmware to test: pass --tinyeff-project (a generated project or an int8 .tflite)")
    path = Path(given)
    if path.suffix == ".tflite":
        board = pytestconfig.getoption("--tinyeff-board")
        if not board:
            pytest.fail("--tinyeff-project is a .tflite: pass --tinyeff-board to generate its firmware")
        return generate(path, board, "compiled", tmp_path_factory.mktemp("tinyeff") / board)
    return path


@pytest.fixture
def tinyeff_device(pytestconfig, tinyeff_project):
    """A device running the project's firmware, ready for commands; closed after the test."""
    from tinyeff.boards import get_board
    from tinyeff.errors import TinyeffError
    from tinyeff.harness.bench import Project
    from tinyeff.harness.dut import Dut
    from tinyeff.harness.flash import flash, open_device

    project = Project.load(tinyeff_project)
    board = pytestconfig.getoption("--tinyeff-board")
    if board and board != project.manifest["board"]:
        pytest.fail(f"--tinyeff-board {board} but {tinyeff_project} was generated for {project.manifest['board']}")
    port = pytestconfig.getoption("--tinyeff-port")
    emulator = pytestconfig.getoption("--tinyeff-emulator")
    place = pytestconfig.getoption("--tinyeff-labgrid")
    if not port and not emulator and not place and get_board(project.manifest["board"]).emulator is None:
        pytest.skip(f"{project.manifest['board']} is a real board: pass --tinyeff-port")
    with contextlib.ExitStack() as stack:
        try:
            if place:
                from tinyeff.harness.farm import LabgridPlaces
                from tinyeff.harness.flash import open_place

                coordinator = pytestconfig.getoption("lg_coordinator", default=None)
                acquired = stack.enter_context(LabgridPlaces([place], coordinator))
                device = stack.enter_context(open_place(project, acquired[0]))
            else:
                if port:
                    flash(project, port)
                device = stack.enter_context(open_device(project, port, emulator))
        except TinyeffError as e:
            pytest.skip(str(e)) if "not installed" in str(e) else pytest.fail(str(e))
        dut = Dut(device)
        dut.wait_ready()
        yield TinyeffDevice(project, device, dut)
