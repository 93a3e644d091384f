"""Careless input to every command: one clear error, and nothing lost or run.

One table per command. Each case runs the command through click's runner on tiny files in
``tmp_path`` and asserts: a non-zero exit, no traceback (nor an exception click did not turn into a
message), the culprit (option, file, key) named in the output, and every file under ``tmp_path``
exactly as before (bytes and mtime), with nothing created beside them.

Arguments name the workspace files as ``$key`` (see :func:`ws`); ``$tmp`` is the folder itself.
A command's table is a list of ``pytest.param(args, culprits, id=...)`` and a three-line test
that calls :func:`_run_case`.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tinyrun import make_setup

from esfit.cli import main

HAS_PROC = Path("/proc/self").is_dir()
# on Linux, /proc is a folder where nobody, root included, can create a file
UNWRITABLE = "/proc/esfit-bad-input/out.jsonl"
needs_proc = pytest.mark.skipif(not HAS_PROC, reason="needs Linux /proc as an unwritable folder")
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")

RECORDS = [
    {"prompt_id": "q1", "text": "Marie Curie won the Nobel Prize in 1903.", "prompt": "What did Curie win?",
     "source": "Marie Curie won the Nobel Prize in Physics in 1903."},
    {"prompt_id": "q2", "text": "The Danube flows into the Black Sea.", "prompt": "Where does the Danube flow?"},
]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return make_setup(tmp_path_factory.mktemp("tiny"))["model"]


@pytest.fixture
def ws(tmp_path) -> dict[str, str]:
    """A workspace of small files a user might pass by mistake; key -> path."""
    files: dict[str, str | bytes] = {
        "corpus.jsonl": _jsonl(RECORDS),
        "model.jsonl": _jsonl([{**r, "author": "model"} for r in RECORDS]),
        "noprompt.jsonl": _jsonl([{"prompt_id": "q1", "text": "an answer"}]),
        "badlines.jsonl": "not json\n{\"prompt_id\": \"q1\"}\n",
        "multiref.json": json.dumps([{"prompt_id": "a", "references": ["r1", "r2"], "systems": {"bart": "x"}}]),
        "patterns.jsonl": _jsonl([{"label": "SHIP", "pattern": "Space Cruiser"}]),
        "fit.toml": 'spec = "f1_at_k:1"\n',
        "binary.toml": bytes(range(256)),
        "compint.toml": "[components]\nf1 = 3\n",
        "weightlist.toml": "[components.f1_at_k]\nweight = [1]\n",
        "weightbool.toml": "[components.f1_at_k]\nweight = true\n",
        "weightzero.toml": "[components.f1_at_k]\nweight = 0\n",
        "binary.bin": bytes(range(256)) * 4,
        "notdb.sqlite": "this is a text file, not an sqlite database\n",
        "afile": "a plain file that paths are put under by mistake\n",
        "broken_plugin.py": "from fitness import register\nvalue = 1 / 0\n",
        "empty.jsonl": "",
        "empty.json": "",
        "adir/keep.txt": "a file inside a folder\n",
    }
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe")
    keys = {name.split("/")[0].replace(".", "_"): str(tmp_path / name.split("/")[0]) for name in files}
    return {**keys, "tmp": str(tmp_path)}


def _snapshot(root: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every file (bytes, mtime) and folder (None) under root."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def _run_case(ws: dict[str, str], args: Sequence[str], culprits: Sequence[str]) -> Result:
    """Run one bad-input case and check the four promises; returns click's result."""
    argv = [string.Template(a).safe_substitute(ws) for a in args]
    root = Path(ws["tmp"])
    before = _snapshot(root)
    result = CliRunner().invoke(main, argv)
    output = result.output
    assert result.exit_code != 0, f"{argv} succeeded:\n{output}"
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{argv} raised {result.exception!r} instead of printing an error:\n{output}")
    for culprit in culprits:
        assert string.Template(culprit).safe_substitute(ws) in output, f"{culprit!r} not named in:\n{output}"
    after = _snapshot(root)
    assert after.keys() == before.keys(), f"files created or removed: {set(after) ^ set(before)}"
    changed = [name for name in before if before[name] != after[name]]
    assert not changed, f"{argv} changed {changed}"
    return result


# --------------------------------------------------------------------------------------- convert

CONVERT_CASES = [
    pytest.param(["multiref", "$multiref_json", "-o", "$multiref_json"], ["-o $multiref_json", "same file as INPUT"],
                 id="output-is-input"),
    pytest.param(["multiref", "$multiref_json", "-o", "$tmp/adir/../multiref.json"], ["same file as INPUT"],
                 id="output-is-input-spelled-otherwise"),
    pytest.param(["squality-eval", "$multiref_json", "--stories", "$corpus_jsonl", "-o", "$corpus_jsonl"],
                 ["-o $corpus_jsonl", "same file as --stories"], id="output-is-stories"),
    pytest.param(["multiref", "$multiref_json", "-o", "$tmp/new/"], ["-o $tmp/new/", "names a folder"],
                 id="output-ends-with-separator"),
    pytest.param(["multiref", "$multiref_json", "-o", "$adir"], ["adir", "is a directory"], id="output-is-a-folder"),
    pytest.param(["multiref", "$multiref_json", "-o", "$afile/x.jsonl"], ["-o $afile/x.jsonl", "is a file, not a folder"],
                 id="output-under-a-file"),
    # a pipe, not /dev/null: a command without the check, run as root, would replace /dev/null
    pytest.param(["multiref", "$multiref_json", "-o", "$tmp/pipe"], ["-o $tmp/pipe", "not a regular file"],
                 id="output-is-a-pipe", marks=needs_fifo),
    pytest.param(["multiref", "$multiref_json", "-o", UNWRITABLE], [f"-o {UNWRITABLE}", "nothing can be created"],
                 id="output-unwritable", marks=needs_proc),
    pytest.param(["multiref", "$empty_json", "-o", "$tmp/out.jsonl"], ["empty.json", "invalid JSON"], id="empty-input"),
    pytest.param(["squality", "$empty_json", "-o", "$tmp/out.jsonl"], ["empty.json", "holds no records"],
                 id="empty-input-squality"),
    pytest.param(["multiref", "$binary_bin", "-o", "$tmp/out.jsonl"], ["binary.bin", "not valid UTF-8"], id="binary-input"),
    pytest.param(["squad", "$multiref_json", "-o", "$tmp/out.jsonl"], ["multiref.json", "SQuAD"], id="wrong-format"),
    pytest.param(["multiref", "$adir", "-o", "$tmp/out.jsonl"], ["adir", "is a directory"], id="input-is-a-folder"),
    pytest.param(["multiref", "$tmp/missing.json", "-o", "$tmp/out.jsonl"], ["missing.json", "does not exist"],
                 id="missing-input"),
    pytest.param(["summeval", "$multiref_json", "-o", "$tmp/out.jsonl"], ["summeval", "multiref"], id="unknown-format"),
    pytest.param(["multiref", "$multiref_json", "-o", "$tmp/out.jsonl", "--dedupe"], ["dedupe", "multiref"],
                 id="option-of-another-format"),
]


@pytest.mark.parametrize(("args", "culprits"), CONVERT_CASES)
def test_convert_bad_input(ws, args, culprits):
    _run_case(ws, ["convert", *args], culprits)


# --------------------------------------------------------------------------------------- extract

EXTRACT_CASES = [
    pytest.param(["$corpus_jsonl", "-o", "$corpus_jsonl"], ["-o $corpus_jsonl", "same file as CORPUS"],
                 id="output-is-corpus"),
    pytest.param(["$corpus_jsonl", "-o", "$patterns_jsonl", "--patterns", "$patterns_jsonl"],
                 ["same file as --patterns"], id="output-is-patterns"),
    pytest.param(["$corpus_jsonl", "-o", "$tmp/f.jsonl", "--cache", "$tmp/f.jsonl"], ["-o", "same file as --cache"],
                 id="output-is-cache"),
    pytest.param(["$corpus_jsonl", "-o", "$tmp/f.jsonl", "--cache", "$corpus_jsonl"],
                 ["--cache $corpus_jsonl", "same file as CORPUS"], id="cache-is-corpus"),
    pytest.param(["$corpus_jsonl", "-o", "$tmp/new/"], ["-o $tmp/new/", "names a folder"], id="output-ends-with-separator"),
    pytest.param(["$corpus_jsonl", "-o", "$adir"], ["adir", "is a directory"], id="output-is-a-folder"),
    pytest.param(["$corpus_jsonl", "-o", "$afile/f.jsonl"], ["-o $afile/f.jsonl", "is a file, not a folder"],
                 id="output-under-a-file"),
    pytest.param(["$corpus_jsonl", "-o", UNWRITABLE], [f"-o {UNWRITABLE}", "nothing can be created"],
                 id="output-unwritable", marks=needs_proc),
    pytest.param(["$corpus_jsonl", "-o", "$tmp/f.jsonl", "--pipeline", "bogus_pipeline"],
                 ["pipeline='bogus_pipeline'", "not an installed spaCy pipeline"], id="pipeline-bogus"),
    pytest.param(["$corpus_jsonl", "-o", "$tmp/f.jsonl", "--cache", "$notdb_sqlite"],
                 ["--cache", "notdb.sqlite", "not a usable sqlite database"], id="cache-not-sqlite"),
    pytest.param(["$corpus_jsonl", "-o", "$tmp/f.jsonl", "--cache", "$adir"], ["--cache", "is a directory"],
                 id="cache-is-a-folder"),
    pytest.param(["$corpus_jsonl", "-o", "$tmp/f.jsonl", "--cache", "$afile/c.sqlite"],
                 ["--cache $afile/c.sqlite", "is a file, not a folder"], id="cache-under-a-file"),
    pytest.param(["$corpus_jsonl", "-o", "$tmp/f.jsonl", "--kinds", "bogus"], ["--kinds", "'bogus'", "entity"],
                 id="kinds-bogus"),
    pytest.param(["$corpus_jsonl", "-o", "$tmp/f.jsonl", "--kinds", ","], ["--kinds", "subset"], id="kinds-empty"),
    pytest.param(["$corpus_jsonl", "-o", "$tmp/f.jsonl", "--patterns", "$binary_bin"], ["binary.bin:1", "not a JSON object"],
                 id="patterns-binary"),
    pytest.param(["$empty_jsonl", "-o", "$tmp/f.jsonl"], ["empty.jsonl holds no records"], id="empty-corpus"),
    pytest.param(["$badlines_jsonl", "-o", "$tmp/f.jsonl", "--skip-bad"], ["badlines.jsonl holds no records"],
                 id="every-line-bad-with-skip-bad"),
    pytest.param(["$binary_bin", "-o", "$tmp/f.jsonl"], ["binary.bin:1", "not valid UTF-8"], id="binary-corpus"),
    pytest.param(["$adir", "-o", "$tmp/f.jsonl"], ["adir", "is a directory"], id="corpus-is-a-folder"),
]


@pytest.mark.parametrize(("args", "culprits"), EXTRACT_CASES)
def test_extract_bad_input(ws, args, culprits):
    _run_case(ws, ["extract", *args, "--no-progress"], culprits)


# ----------------------------------------------------------------------------------------- score

_SCORE = ["-r", "$corpus_jsonl", "-c", "$model_jsonl", "--n-boot", "5"]

SCORE_CASES = [
    pytest.param(["-r", "$corpus_jsonl", "-c", "$corpus_jsonl", "--json", "$corpus_jsonl"],
                 ["--json $corpus_jsonl", "same file as --references"], id="json-is-input"),
    pytest.param([*_SCORE, "--report", "$model_jsonl"], ["--report $model_jsonl", "same file as --candidates"],
                 id="report-is-candidates"),
    pytest.param([*_SCORE, "--fitness", "$fit_toml", "--json", "$fit_toml"], ["--json", "same file as --fitness"],
                 id="json-is-fitness-file"),
    pytest.param([*_SCORE, "--plugins", "$broken_plugin_py", "--json", "$broken_plugin_py"],
                 ["--json", "same file as --plugins"], id="json-is-plugin"),
    pytest.param([*_SCORE, "--cache", "$corpus_jsonl"], ["--cache $corpus_jsonl", "same file as --references"],
                 id="cache-is-input"),
    pytest.param([*_SCORE, "--json", "$tmp/s.json", "--report", "$tmp/s.json"], ["--json", "--report", "same file"],
                 id="json-is-report"),
    pytest.param([*_SCORE, "--json", "$tmp/new/"], ["--json $tmp/new/", "names a folder"], id="json-ends-with-separator"),
    pytest.param([*_SCORE, "--json", "$afile/s.json"], ["--json $afile/s.json", "is a file, not a folder"],
                 id="json-under-a-file"),
    pytest.param([*_SCORE, "--report", "$afile/r.html"], ["--report $afile/r.html", "is a file, not a folder"],
                 id="report-under-a-file"),
    pytest.param([*_SCORE, "--report", "$adir"], ["--report", "is a directory"], id="report-is-a-folder"),
    pytest.param([*_SCORE, "--json", UNWRITABLE], [f"--json {UNWRITABLE}", "nothing can be created"],
                 id="json-unwritable", marks=needs_proc),
    pytest.param([*_SCORE, "--pipeline", "bogus_pipeline"], ["--pipeline", "bogus_pipeline"], id="pipeline-bogus"),
    pytest.param([*_SCORE, "--pipeline", ""], ["--pipeline", "non-empty"], id="pipeline-empty"),
    pytest.param([*_SCORE, "--fitness", ""], ["--fitness", "empty"], id="fitness-empty"),
    pytest.param([*_SCORE, "--cache", "$notdb_sqlite"], ["--cache", "notdb.sqlite", "not a usable sqlite database"],
                 id="cache-not-sqlite"),
    pytest.param([*_SCORE, "--fitness", "bleu"], ["--fitness", "unknown fitness component 'bleu'; known components"],
                 id="fitness-unknown-component"),
    pytest.param([*_SCORE, "--fitness", "f1_at_k:1 +"], ["--fitness", "terms joined by '+'"],
                 id="fitness-message-keeps-its-closing-quote"),
    pytest.param([*_SCORE, "--fitness", "$binary_toml"], ["--fitness", "binary.toml", "not UTF-8"],
                 id="fitness-file-binary"),
    pytest.param([*_SCORE, "--fitness", "$tmp/nothere.toml"], ["--fitness", "nothere.toml"], id="fitness-file-missing"),
    pytest.param([*_SCORE, "--fitness", "$compint_toml"], ["--fitness", "entry 'f1' must be a table"],
                 id="fitness-file-component-not-a-table"),
    pytest.param([*_SCORE, "--fitness", "$weightlist_toml"], ["--fitness", "weight of 'f1_at_k' must be a number"],
                 id="fitness-file-weight-list"),
    pytest.param([*_SCORE, "--fitness", "$weightbool_toml"], ["--fitness", "weight of 'f1_at_k' must be a number"],
                 id="fitness-file-weight-bool"),
    pytest.param([*_SCORE, "--fitness", "$weightzero_toml"], ["--fitness", "weight 0 of 'f1_at_k'"],
                 id="fitness-file-weight-zero"),
    pytest.param([*_SCORE, "--plugins", "no_such_plugin_module"], ["--plugins no_such_plugin_module", "no module"],
                 id="plugin-module-missing"),
    pytest.param([*_SCORE, "--plugins", "$tmp/nothere.py"], ["--plugins $tmp/nothere.py", "does not exist"],
                 id="plugin-file-missing"),
    pytest.param([*_SCORE, "--plugins", "$broken_plugin_py"],
                 ["--plugins $broken_plugin_py", "ZeroDivisionError", "broken_plugin.py:2"], id="plugin-raises"),
    pytest.param(["-r", "$empty_jsonl", "-c", "$model_jsonl"], ["--references", "empty.jsonl", "holds no records"],
                 id="references-empty"),
    pytest.param(["-r", "$corpus_jsonl", "-c", "$binary_bin"], ["binary.bin:1", "not valid UTF-8"], id="candidates-binary"),
    pytest.param(["-r", "$adir", "-c", "$model_jsonl"], ["--references", "is a directory"], id="references-is-a-folder"),
]


@pytest.mark.parametrize(("args", "culprits"), SCORE_CASES)
def test_score_bad_input(ws, args, culprits):
    _run_case(ws, ["score", *args], culprits)


# -------------------------------------------------------------------------------------- generate

_GEN = ["--prompts", "$corpus_jsonl", "--max-new-tokens", "2"]

GENERATE_CASES = [
    pytest.param([*_GEN, "-o", "$tmp/g.jsonl", "--format", "foo"], ["--format", "'foo'", "multiref"], id="format-foo"),
    pytest.param([*_GEN, "-o", "$tmp/g.jsonl", "--device", "cuda"],
                 ["--device 'cuda'", "CUDA is not available", "--device cpu"], id="device-cuda-without-cuda"),
    pytest.param([*_GEN, "-o", "$tmp/g.jsonl", "--device", "bogus"], ["--device 'bogus'", "cpu"], id="device-bogus"),
    pytest.param([*_GEN, "-o", "$tmp/g.jsonl", "--prompt-template", "{question}"],
                 ["--prompt-template", "{question}", "{prompt}"], id="template-unknown-placeholder"),
    pytest.param([*_GEN, "-o", "$tmp/g.jsonl", "--prompt-template", "{source}"], ["--prompt-template", "no {prompt}"],
                 id="template-without-prompt"),
    pytest.param([*_GEN, "-o", "$tmp/g.jsonl", "--prompt-template", "{prompt} {"],
                 ["--prompt-template", "not a valid template"], id="template-lone-brace"),
    pytest.param([*_GEN, "-o", "$corpus_jsonl"], ["-o $corpus_jsonl", "same file as --prompts"], id="output-is-prompts"),
    pytest.param([*_GEN, "-o", "$tmp/new/"], ["-o $tmp/new/", "names a folder"], id="output-ends-with-separator"),
    pytest.param([*_GEN, "-o", "$afile/g.jsonl"], ["-o $afile/g.jsonl", "is a file, not a folder"],
                 id="output-under-a-file"),
    pytest.param([*_GEN, "-o", UNWRITABLE], [f"-o {UNWRITABLE}", "nothing can be created"], id="output-unwritable",
                 marks=needs_proc),
    pytest.param([*_GEN, "-o", "$tmp/g.jsonl", "--author", ""], ["--author", "non-empty"], id="author-empty"),
    pytest.param(["--prompts", "$empty_jsonl", "-o", "$tmp/g.jsonl"], ["empty.jsonl holds no records"],
                 id="prompts-empty"),
    pytest.param(["--prompts", "$binary_bin", "-o", "$tmp/g.jsonl"], ["binary.bin:1", "not valid UTF-8"],
                 id="prompts-binary"),
    pytest.param(["--prompts", "$noprompt_jsonl", "-o", "$tmp/g.jsonl"], ["noprompt.jsonl", "'q1' has no question"],
                 id="prompts-without-question"),
]


@pytest.fixture
def no_model_loads(monkeypatch):
    """Fail the case if it gets as far as loading a model; and a machine without CUDA."""
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded: the check came too late")

    monkeypatch.setattr("esfit.models.load_model", refuse)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize(("args", "culprits"), GENERATE_CASES)
def test_generate_bad_input(ws, tiny_model, no_model_loads, args, culprits):
    _run_case(ws, ["generate", "--model", tiny_model, *args], culprits)


def test_generate_failing_half_way_keeps_what_it_wrote_and_says_where(ws, tiny_model, monkeypatch, one_thread):
    import trainer
    from infoextract import read_records

    real = trainer.generate_rollouts
    out = Path(ws["tmp"]) / "g.jsonl"
    seen: list[list[str]] = []

    def fail_on_second_batch(model, tokenizer, prompts, config, **kwargs):
        # what a reader sees in the partial file while the second batch is being generated
        seen.append([p.read_text() for p in out.parent.glob("g.jsonl.*.partial")])
        if len(seen) == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(model, tokenizer, prompts, config, **kwargs)

    monkeypatch.setattr(trainer, "generate_rollouts", fail_on_second_batch)
    result = CliRunner().invoke(main, ["generate", "--model", tiny_model, "--prompts", ws["corpus_jsonl"], "-o",
                                       str(out), "--max-new-tokens", "3", "--rollouts", "2", "--batch-rows", "2"])
    assert isinstance(result.exception, RuntimeError)
    partials = list(out.parent.glob("g.jsonl.*.partial"))
    assert len(partials) == 1 and not out.exists()
    assert f"the 2 completions written so far are in {partials[0]}" in result.output
    assert "stopped after 1 of 2 prompts" in result.output
    assert seen[0] == [""] and seen[1] == [partials[0].read_text()]  # written (and flushed) batch by batch
    records = read_records(partials[0])
    assert [r.prompt_id for r in records] == ["q1", "q1"] and all(r.author == "model" for r in records)


def test_generate_writes_the_whole_file_at_the_end(ws, tiny_model, one_thread):
    out = Path(ws["tmp"]) / "sub" / "g.jsonl"  # a missing folder is created
    result = CliRunner().invoke(main, ["generate", "--model", tiny_model, "--prompts", ws["corpus_jsonl"], "-o",
                                       str(out), "--max-new-tokens", "3", "--batch-rows", "1"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["prompt_id"] for line in out.read_text().splitlines()] == ["q1", "q2"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["g.jsonl"]  # no partial file left


# ----------------------------------------------------------------------------------------- train

def _state(path: Path) -> dict:
    import torch

    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def train_assets(tmp_path_factory) -> Path:
    """Folders a train case needs, built once: a tiny model, a finished run (checkpoints after 1 and
    2 generations), damaged copies of it, a lone checkpoint, and models that must be refused."""
    import shutil

    import torch
    from tinyrun import base_overrides, letter_share
    from transformers import BertConfig, BertModel

    from esfit.config import load_config
    from esfit.training import train
    from trainer.testing import char_tokenizer

    root = tmp_path_factory.mktemp("train-assets")
    build = tmp_path_factory.mktemp("train-build")
    before = torch.get_num_threads()
    try:
        config = load_config(overrides=base_overrides(build, generations=2, checkpoint_every=1, eval_every=0,
                                                      output_dir=str(root / "run")))
        train(config, fitness=letter_share, progress=False, echo=lambda s: None)
    finally:
        torch.set_num_threads(before)
    shutil.copytree(build / "model", root / "model")
    ckpt = Path("checkpoints") / "gen-000002"
    for name in ("state_truncated", "state_empty", "weights_truncated", "state_not_data", "state_plugins"):
        shutil.copytree(root / "run", root / name)
    state = root / "state_truncated" / ckpt / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    (root / "state_empty" / ckpt / "trainer_state.pt").write_bytes(b"")
    weights = root / "weights_truncated" / ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    torch.save({"format_version": 1, "es": {}, "extra": {"x": _Payload()}},
               root / "state_not_data" / ckpt / "trainer_state.pt")
    # someone else's checkpoint, edited: a plugin (code) and their fitness component
    saved = _state(root / "state_plugins" / ckpt / "trainer_state.pt")
    saved["extra"]["config"].update(plugins=[str(root / "evil.py")], fitness="evil_component:1")
    torch.save(saved, root / "state_plugins" / ckpt / "trainer_state.pt")
    (root / "evil.py").write_text("from pathlib import Path\nPath(__file__).with_name('EVIL_RAN').write_text('x')\n")
    shutil.copytree(root / "run" / ckpt, root / "lone")
    # models: config without weights, truncated weights, no config, a plain BertModel (no LM head)
    shutil.copytree(root / "model", root / "noweights", ignore=shutil.ignore_patterns("*.safetensors"))
    shutil.copytree(root / "model", root / "truncmodel")
    weights = root / "truncmodel" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    shutil.copytree(root / "model", root / "noconfig", ignore=shutil.ignore_patterns("config.json"))
    BertModel(BertConfig(vocab_size=49, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16)).save_pretrained(root / "bert")
    char_tokenizer().save_pretrained(root / "bert")
    return root


class _Payload:
    """A pickled object whose unpickling would run code (print): weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("the payload ran",))


TRAIN_ASSETS = ("run", "model", "state_truncated", "state_empty", "weights_truncated", "state_not_data",
                "state_plugins", "evil.py", "lone", "noweights", "truncmodel", "noconfig", "bert")


@pytest.fixture
def tws(ws, train_assets) -> dict[str, str]:
    """The workspace plus copies of the train assets (so that the cases show them untouched)."""
    import shutil

    tmp = Path(ws["tmp"])
    for name in TRAIN_ASSETS:
        src = train_assets / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp / name)
    return {**ws, **{name.replace(".", "_"): str(tmp / name) for name in TRAIN_ASSETS}}


_TRAIN = ["--model", "$model", "--train-data", "$corpus_jsonl", "--population-size", "4", "--max-new-tokens", "2",
          "--generations", "1", "--threads", "1", "--quiet"]
_NEW = ["--output-dir", "$tmp/new-run"]
_CKPT = "checkpoints/gen-000002"

# cases refused before any model loads (no_model_loads fails the case otherwise)
TRAIN_CASES = [
    pytest.param([*_TRAIN, *_NEW, "--prompt-template", "{prompt} {foo}"], ["prompt_template", "{foo}"],
                 id="template-unknown-placeholder"),
    pytest.param([*_TRAIN, *_NEW, "--set", "learning_rate=inf"], ["learning_rate=inf", "finite"], id="lr-inf"),
    pytest.param([*_TRAIN, *_NEW, "--set", "weight_decay=inf"], ["weight_decay=inf", "finite"], id="decay-inf"),
    pytest.param([*_TRAIN, *_NEW, "--set", "sigma=inf"], ["sigma=inf", "finite"], id="sigma-inf"),
    pytest.param([*_TRAIN, *_NEW, "--set", "learning_rate=nan"], ["learning_rate=nan", "finite"], id="lr-nan"),
    pytest.param([*_TRAIN, "--output-dir", "$afile"], ["--output-dir $afile", "is a file, not a folder"],
                 id="output-is-a-file"),
    pytest.param([*_TRAIN, "--output-dir", "$afile/run"], ["--output-dir $afile/run", "is a file, not a folder"],
                 id="output-under-a-file"),
    pytest.param([*_TRAIN, "--output-dir", "/proc/esfit-bad-input/run"],
                 ["--output-dir /proc/esfit-bad-input/run", "nothing can be created"], id="output-unwritable",
                 marks=needs_proc),
    pytest.param([*_TRAIN, "--output-dir", "$model"], ["--output-dir $model", "same path as model"],
                 id="output-is-the-model"),
    pytest.param([*_TRAIN, "--output-dir", "$run"],
                 ["--output-dir $run", "holds another run", "--resume $run", "--overwrite-output-dir"],
                 id="output-holds-another-run"),
    pytest.param([*_TRAIN, "--output-dir", "$noweights"], ["--output-dir $noweights", "not an esfit run's"],
                 id="output-is-a-model-folder"),
    pytest.param([*_TRAIN, "--output-dir", "$noweights", "--overwrite-output-dir"],
                 ["--output-dir $noweights", "not an esfit run's"], id="overwrite-a-model-folder"),
    pytest.param(["--model", f"$run/{_CKPT}", *_TRAIN[2:], "--output-dir", "$run", "--overwrite-output-dir"],
                 ["--overwrite-output-dir would delete", "$run/checkpoints", f"model $run/{_CKPT}"],
                 id="overwrite-would-delete-the-model"),
    pytest.param([*_TRAIN, *_NEW, "--device", "cuda"], ["device 'cuda'", "CUDA is not available", "--device cpu"],
                 id="device-cuda-without-cuda"),
    pytest.param([*_TRAIN, *_NEW, "--device", "bogus"], ["device", "bogus"], id="device-bogus"),
    pytest.param(["--resume", "$tmp"], ["--resume $tmp", "no checkpoint found"], id="resume-nothing"),
    pytest.param(["--resume", "$run", "--overwrite-output-dir", "--generations", "3"],
                 ["--overwrite-output-dir would delete the run", "--resume $run"], id="resume-and-overwrite"),
    pytest.param(["--resume", "$run", "--output-dir", "$tmp/elsewhere", "--generations", "3"],
                 ["$tmp/elsewhere", "writes only into the folder it resumes", "cp -a $run"],
                 id="resume-into-another-folder"),
    pytest.param(["--resume", "$lone", "--generations", "3"], ["--resume $lone", "give --output-dir"],
                 id="resume-lone-checkpoint-without-output-dir"),
    pytest.param(["--resume", "$state_truncated", "--generations", "3"],
                 [f"$state_truncated/{_CKPT}/trainer_state.pt is damaged", "truncated",
                  "esfit train --resume $state_truncated/checkpoints/gen-000001"], id="resume-truncated-state"),
    pytest.param(["--resume", "$state_empty", "--generations", "3"],
                 [f"$state_empty/{_CKPT}/trainer_state.pt is damaged", "empty",
                  "$state_empty/checkpoints/gen-000001"], id="resume-empty-state"),
    pytest.param(["--resume", "$weights_truncated", "--generations", "3"],
                 [f"$weights_truncated/{_CKPT}/model.safetensors is damaged",
                  "$weights_truncated/checkpoints/gen-000001"], id="resume-truncated-weights"),
    pytest.param(["--resume", "$state_not_data", "--generations", "3"],
                 [f"$state_not_data/{_CKPT}/trainer_state.pt", "other than plain data", "nothing in it ran"],
                 id="resume-state-with-objects"),
    pytest.param(["--resume", "$state_plugins", "--generations", "3"],
                 ["evil_component", "which --resume does not import", "name them again: --plugins", "evil.py"],
                 id="resume-does-not-import-saved-plugins"),
]


@pytest.mark.parametrize(("args", "culprits"), TRAIN_CASES)
def test_train_bad_input(tws, train_assets, no_model_loads, one_thread, args, culprits):
    result = _run_case(tws, ["train", *args], culprits)
    assert "the payload ran" not in result.output
    assert not (train_assets / "EVIL_RAN").exists()  # the saved plugin was not imported


# cases found while loading the model (before the scorer, the run folder left as it was)
TRAIN_MODEL_CASES = [
    pytest.param(["--model", "$noweights"], ["model $noweights", "no weights"], id="model-without-weights"),
    pytest.param(["--model", "$truncmodel"], ["model $truncmodel", "model.safetensors is damaged", "truncated"],
                 id="model-truncated-safetensors"),
    pytest.param(["--model", "$noconfig"], ["model $noconfig", "no config.json"], id="model-without-config"),
    pytest.param(["--model", "$bert"], ["model $bert", "LM head", "cls.predictions"], id="model-not-a-causal-lm"),
    pytest.param(["--target-modules", "q_proj,nonexistent"], ["'nonexistent' matched no linear layer", "k_proj"],
                 id="target-module-that-matches-nothing"),
    pytest.param(["--output-dir", "$run"], ["holds another run"], id="used-folder-is-refused-before-loading"),
]


@pytest.mark.parametrize(("args", "culprits"), TRAIN_MODEL_CASES)
def test_train_bad_model(tws, one_thread, args, culprits):
    _run_case(tws, ["train", *_TRAIN, *_NEW, *args], culprits)


def test_train_refuses_a_folder_another_run_holds(tws, one_thread):
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom esfit.runlog import RunLock\n"
                               "RunLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(60)\n",
                               tws["run"]], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for args in ([*_TRAIN, "--output-dir", "$run", "--overwrite-output-dir"], ["--resume", "$run"]):
            result = _run_case(tws, ["train", *args], ["--output-dir", "in use by another esfit run",
                                                         f"pid {holder.pid}", "started", ".esfit.lock"])
            assert "holds another run" not in result.output
    finally:
        holder.kill()
        holder.wait()
