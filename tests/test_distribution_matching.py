"""The reporting of benchmarks/distribution_matching.py (no model: synthetic set reports)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from fitness.setlevel import SET_METRICS, SetReport

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("distribution_matching", REPO / "benchmarks" / "distribution_matching.py")
dm = importlib.util.module_from_spec(spec)
sys.modules.setdefault("distribution_matching", dm)  # dataclasses look their module up
spec.loader.exec_module(dm)


def report(js: list[float]) -> SetReport:
    per = {f"p{i}": {m: (v if m == "js" else 0.5) for m in SET_METRICS} for i, v in enumerate(js)}
    mean = {m: sum(row[m] for row in per.values()) / len(per) for m in SET_METRICS}
    return SetReport(per, mean, {m: (mean[m] - 0.01, mean[m] + 0.01) for m in SET_METRICS})


def run(evals: list[list[float]], after: list[float], seed: int) -> dict:
    return {"evals": [{"tokens": 100 * (i + 1), "result": report(js)} for i, js in enumerate(evals)],
            "after": report(after), "tokens": 300, "wall_s": 1.0, "steps": 3, "seed": seed}


def test_peak_kept_is_the_share_of_the_best_gain_the_end_keeps():
    before = report([0.6, 0.6])
    assert dm._peak_kept(before, run([[0.5, 0.5]], [0.55, 0.55], 0)) == pytest.approx(0.5)
    assert dm._peak_kept(before, run([[0.58, 0.58]], [0.5, 0.5], 0)) == pytest.approx(1.0)
    assert math.isnan(dm._peak_kept(before, run([[0.7, 0.7]], [0.65, 0.65], 0)))  # never below the start


def test_rows_and_table_carry_each_methods_own_seeds():
    before = report([0.6, 0.7, 0.5])
    runs = {"es": [run([[0.55, 0.65, 0.45]], [0.5, 0.62, 0.38], s) for s in (0, 1, 2)],
            "grpo": [run([[0.6, 0.7, 0.5]], [0.65, 0.75, 0.55], 0)]}
    rows = dm.summarise(before, runs, n_boot=200)
    assert rows["es"]["seeds"] == [0, 1, 2] and rows["grpo"]["seeds"] == [0]
    assert rows["es"]["js_delta"] == pytest.approx([-0.1] * 3)
    assert rows["grpo"]["js_delta"] == pytest.approx([0.05])
    lo, hi = rows["es"]["js_delta_ci"][0]
    assert lo <= -0.1 <= hi < 0
    text = dm.table(before, rows)
    es_line = next(line for line in text.splitlines() if line.startswith("es "))
    assert es_line.rstrip().endswith("0,1,2") and "1.00" in es_line  # the end is the best point: keeps all
    assert next(line for line in text.splitlines() if line.startswith("grpo ")).rstrip().endswith(" 0")


def test_a_validation_split_that_shares_prompts_is_refused(tmp_path, capsys):
    corpus = REPO / "datasets" / "mentions"
    with pytest.raises(SystemExit) as err:
        dm.main(["--validation-data", str(corpus / "train.jsonl"), "--methods", "es", "--out", str(tmp_path / "out")])
    assert err.value.code == 2
    assert "shares prompt ids with --train-data" in capsys.readouterr().err
    # tuning on the validation split: the default early stopping would watch the reported prompts
    with pytest.raises(SystemExit) as err:
        dm.main(["--eval-data", str(corpus / "validation.jsonl"), "--methods", "es", "--out", str(tmp_path / "out")])
    message = capsys.readouterr().err
    assert err.value.code == 2 and "shares prompt ids with --eval-data" in message and "--validation-data none" in message


def test_the_table_names_the_generation_each_early_stopped_run_ended_on():
    before = report([0.6, 0.7])
    runs = {"es": [dict(run([[0.5, 0.6]], [0.55, 0.65], s), stopped_at=g) for s, g in ((0, 8), (1, 4))]}
    rows = dm.summarise(before, runs, n_boot=100)
    assert rows["es"]["ended_on_generation"] == [8, 4]
    assert dm.table(before, rows).splitlines()[-1].endswith("0,1 (ended on generations 8,4)")
