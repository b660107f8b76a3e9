import dataclasses
import json

import numpy as np
import pytest

from tinyeff import __version__
from tinyeff.boards import all_boards, get_board, load_board_file
from tinyeff.cli import main
from tinyeff.codegen import compile_model
from tinyeff.errors import TinyeffError
from tinyeff.footprint import load_model_file
from tinyeff.generate import _check_fits, generate

REQUIRED = {"qemu-mps2-an386", "qemu-mps2-an500", "qemu-mps2-an505", "qemu-mps3-an547", "nucleo-l4r5zi",
            "nucleo-h7a3zi-q", "disco-f746ng", "nano33ble", "rpi-pico", "esp32-s3-devkitc-1"}


def test_every_required_board_loads_and_validates():
    boards = all_boards()
    assert REQUIRED <= set(boards)
    for b in boards.values():
        assert b.flash_kib > b.app_flash_kib and b.ram_kib > b.app_ram_kib and b.clock_hz > 0
        assert (b.baremetal is not None) == b.emulated


def test_unknown_keys_and_wrong_ids_are_refused(tmp_path):
    text = all_boards_path("qemu-mps2-an386").read_text()
    (tmp_path / "qemu-mps2-an386.toml").write_text(text.replace("clock_hz", "clock_mhz"))
    with pytest.raises(TinyeffError, match="unknown keys clock_mhz"):
        load_board_file(tmp_path / "qemu-mps2-an386.toml")
    (tmp_path / "other.toml").write_text(text)
    with pytest.raises(TinyeffError, match="name the file qemu-mps2-an386.toml"):
        load_board_file(tmp_path / "other.toml")


def all_boards_path(board_id):
    from tinyeff.resources import resource_dir

    return resource_dir("boards") / f"{board_id}.toml"


def test_unknown_board_suggests_close_ids(capsys):
    assert main(["generate", "x.tflite", "--board", "nucleo-l4r5", "--out", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert "unknown board 'nucleo-l4r5'" in err and "nucleo-l4r5zi" in err


def test_generated_project_has_headers_manifest_and_refuses_overwrite(kws_model, tmp_path):
    out = generate(kws_model, "qemu-mps2-an386", "compiled", tmp_path / "fw")
    data, info = load_model_file(kws_model)
    man = json.loads((out / "tinyeff.json").read_text())
    assert man["model_sha256"] == info.sha256 and man["board"] == "qemu-mps2-an386" and man["runtime"] == "compiled"
    assert man["arena_bytes"] == compile_model(data, info, "kws").plan.arena_bytes
    assert man["ops"] == list(info.op_names) and man["memory_plan"]["inplace_layers"]
    for f in ("src/tinyeff_model.c", "src/tinyeff_model.h", "Makefile", "link.ld", "README.md"):
        first = (out / f).read_text().splitlines()[0]
        assert f"tinyeff {__version__}" in first and info.sha256 in first and "qemu-mps2-an386" in first
    with pytest.raises(TinyeffError, match="already exists \\(a project tinyeff generated\\)"):
        generate(kws_model, "qemu-mps2-an386", "compiled", out)
    generate(kws_model, "qemu-mps2-an386", "compiled", out, force=True)


def test_model_too_large_for_the_board_writes_nothing(kws_model, tmp_path):
    data, info = load_model_file(kws_model)
    compiled = compile_model(data, info, "kws")
    tiny = dataclasses.replace(get_board("qemu-mps2-an386"), ram_kib=8, app_ram_kib=4)
    with pytest.raises(TinyeffError, match="8,960-byte arena but qemu-mps2-an386 leaves 4,096 bytes"):
        _check_fits(compiled, tiny, "kws")


def test_unsupported_op_leaves_no_project(tmp_path):
    from tinyeff._native import tensorflow
    from tinyeff.compress.quantize import keras_to_int8

    keras = tensorflow().keras
    x = keras.Input((8,), batch_size=1)
    model = keras.Model(x, keras.layers.Activation("tanh")(keras.layers.Dense(4)(x)))
    path = tmp_path / "tanh.tflite"
    path.write_bytes(keras_to_int8(model, np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)))
    with pytest.raises(TinyeffError, match="TANH, which the compiled runtime does not support"):
        generate(path, "qemu-mps2-an386", "compiled", tmp_path / "fw")
    assert not (tmp_path / "fw").exists() and not list(tmp_path.glob(".fw.*"))


def test_real_boards_say_what_to_do_until_platformio_projects_exist(kws_model, tmp_path):
    with pytest.raises(TinyeffError, match="nucleo-l4r5zi is built with PlatformIO"):
        generate(kws_model, "nucleo-l4r5zi", "compiled", tmp_path / "fw")
