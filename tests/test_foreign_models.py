"""benchmarks/foreign_models.py, the README's count of other people's models, on a directory small
enough for a test: each model's verdict, the summary, the JSON and the exit code are checked exactly.

The directory holds the MLPerf Tiny KWS reference (shared/models), a 16x8 QUANTIZE chain written with
the schema (int16 in: random inputs over the whole int16 range), the same chain with its op made a
CAST (TFLM runs it, the compiled runtime refuses it) and the KWS model cut in half (the reader refuses it).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from ai_edge_litert import schema_py_generated as schema

from model_edit import edit
from op_models_int16 import make_case

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import foreign_models  # noqa: E402


def _cast(model, graph) -> None:
    code = model.operatorCodes[0]
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CAST


def test_verdicts_on_a_small_directory(kws_model, tmp_path, monkeypatch, capsys):
    models = tmp_path / "models"
    (models / "kws").mkdir(parents=True)
    (models / "kws" / "kws_ref_model.tflite").write_bytes(kws_model.read_bytes())
    (models / "kws" / "truncated.tflite").write_bytes(kws_model.read_bytes()[:len(kws_model.read_bytes()) // 2])
    chain = make_case("requantize_16_32_16")
    (models / "int16_chain.tflite").write_bytes(chain)
    (models / "cast_chain.tflite").write_bytes(edit(chain, _cast))
    (models / "notes.txt").write_text("not a model")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))  # where the per-model directories go, to see them removed

    rc = foreign_models.main([str(models), "--json", str(tmp_path / "out.json")])

    out = capsys.readouterr().out
    report = json.loads((tmp_path / "out.json").read_text())
    rows = {r["model"]: r for r in report["models"]}
    assert list(rows) == ["cast_chain.tflite", "int16_chain.tflite", "kws/kws_ref_model.tflite", "kws/truncated.tflite"]
    assert rows["kws/kws_ref_model.tflite"]["verdict"] == "bit-exact"
    assert rows["int16_chain.tflite"]["verdict"] == "bit-exact"
    cast = rows["cast_chain.tflite"]["verdict"]
    assert cast.startswith("refused by compile: 'cast_chain.tflite' uses CAST, which the compiled runtime does not support"), cast
    truncated = rows["kws/truncated.tflite"]["verdict"]
    assert truncated.startswith("refused by inspect: ") and "kws/truncated.tflite" in truncated and "\n" not in truncated, truncated
    assert [rows[m]["inputs"] for m in rows] == [1, 1, 1, None]
    assert rows["kws/kws_ref_model.tflite"]["bytes"] == 53_936
    summary = ("4 models: 3 pass inspect; 2 bit-exact (2 of 1 input), 0 MISMATCH, 1 refused by compile, "
               "1 refused by inspect, 0 CRASH; ")
    assert report["summary"].startswith(summary)
    assert out.splitlines()[-1] == report["summary"]
    assert "| kws/kws_ref_model.tflite | 53,936 | bit-exact | 1 |" in out
    assert rc == 0
    assert not any(work.iterdir()), "a model's temporary directory was left behind"

    # --limit takes the first models in sorted order
    assert foreign_models.main([str(models), "--limit", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("1 model: 1 pass inspect; 0 bit-exact, 0 MISMATCH, 1 refused by compile")


def test_exit_code_is_1_on_a_mismatch_or_a_crash():
    row = {"inputs": 1, "bytes": 1, "seconds": 0.0}
    rows = [dict(row, model="a", verdict="bit-exact"), dict(row, model="b", verdict="refused by compile: x")]
    assert not foreign_models.failed(rows)
    assert foreign_models.failed(rows + [dict(row, model="c", verdict="MISMATCH")])
    assert foreign_models.failed(rows + [dict(row, model="c", verdict="CRASH: ValueError: x")])
