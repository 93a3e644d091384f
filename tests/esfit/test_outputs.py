"""esfit.outputs: the output-path rules and the incremental atomic writer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from esfit.outputs import AtomicWriter, OutputError, check_output_dir, check_output_file

needs_proc = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc as an unwritable folder")


def test_a_new_file_in_a_missing_folder_is_fine_and_nothing_is_created(tmp_path):
    target = tmp_path / "a" / "b" / "out.jsonl"
    assert check_output_file(target) == target.resolve()
    assert not (tmp_path / "a").exists()
    existing = tmp_path / "old.jsonl"
    existing.write_text("x")
    assert check_output_file(str(existing)) == existing.resolve()  # overwriting an output is allowed


def test_an_input_is_refused_however_it_is_spelled(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("x")
    (tmp_path / "sub").mkdir()
    os.link(src, tmp_path / "hard.jsonl")
    (tmp_path / "soft.jsonl").symlink_to(src)
    for spelling in (src, tmp_path / "sub" / ".." / "in.jsonl", tmp_path / "hard.jsonl", tmp_path / "soft.jsonl"):
        with pytest.raises(OutputError, match=r"^-o .*: is the same file as INPUT .*in\.jsonl, which the command reads"):
            check_output_file(spelling, inputs={"INPUT": src, "--other": None})
    with pytest.raises(OutputError, match="same file as the input"):
        check_output_file(src, inputs=[src])
    with pytest.raises(OutputError, match="same file as --plugins"):
        check_output_file(src, inputs=[("--plugins", tmp_path / "p.py"), ("--plugins", src)], option="--json")
    # an input that does not exist yet (a cache to be created) is still compared by path
    with pytest.raises(OutputError, match="same file as --cache"):
        check_output_file(tmp_path / "c.sqlite", inputs={"--cache": str(tmp_path / "c.sqlite")})


@pytest.mark.parametrize(("make", "path", "message"), [
    (None, "new/", r"^-o .*new/: ends with a path separator.*such as .*new/out\.jsonl"),
    ("dir", "d", r"^-o .*d: is a folder, not a file; give a file path such as .*d/out\.jsonl"),
    ("file", "f/out.jsonl", r"^-o .*f/out\.jsonl: .*f is a file, not a folder, so nothing can be written under it"),
    ("file", "f/deeper/out.jsonl", r"f is a file, not a folder"),
])
def test_folder_like_paths_are_refused(tmp_path, make, path, message):
    if make == "dir":
        (tmp_path / "d").mkdir()
    elif make == "file":
        (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match=message) as info:
        check_output_file(f"{tmp_path}/{path}")
    assert info.value.option == "-o" and info.value.path.endswith(path)


def test_a_pipe_a_read_only_file_and_an_empty_path_are_refused(tmp_path, monkeypatch):
    if hasattr(os, "mkfifo"):  # not /dev/null: a broken check, run as root, would replace it
        os.mkfifo(tmp_path / "pipe")
        with pytest.raises(OutputError, match="exists and is not a regular file"):
            check_output_file(tmp_path / "pipe")
    with pytest.raises(OutputError, match="is empty"):
        check_output_file("")
    ro = tmp_path / "ro.jsonl"
    ro.write_text("x")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode))
    with pytest.raises(OutputError, match=r"is read-only; make it writable"):
        check_output_file(ro)


def test_a_folder_the_user_cannot_write_is_refused(tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    with pytest.raises(OutputError, match=r"nothing can be created in the folder .* \(permission denied\)"):
        check_output_file(tmp_path / "new" / "out.jsonl", option="--json")
    with pytest.raises(OutputError, match=r"^--output-dir .*: nothing can be created"):
        check_output_dir(tmp_path)


@needs_proc
def test_a_folder_where_nothing_can_be_created_is_refused_even_for_root():
    with pytest.raises(OutputError, match=r"nothing can be created in the folder /proc"):
        check_output_file("/proc/esfit-test/out.jsonl")
    with pytest.raises(OutputError, match=r"nothing can be created in the folder /proc"):
        check_output_dir("/proc/esfit-test/run", option="output_dir")


def test_output_dir_rules(tmp_path):
    assert check_output_dir(tmp_path / "runs" / "a") == (tmp_path / "runs" / "a").resolve()
    assert not (tmp_path / "runs").exists()
    assert check_output_dir(tmp_path) == tmp_path.resolve()
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match=r"^output_dir .*f: is a file, not a folder"):
        check_output_dir(tmp_path / "f", option="output_dir")
    with pytest.raises(OutputError, match=r"f is a file, not a folder"):
        check_output_dir(tmp_path / "f" / "run")
    with pytest.raises(OutputError, match="same path as --resume"):
        check_output_dir(tmp_path / "x", inputs={"--resume": tmp_path / "x"})


def test_atomic_writer_renames_at_the_end_and_keeps_the_old_file_until_then(tmp_path):
    target = tmp_path / "sub" / "out.jsonl"
    target.parent.mkdir()
    target.write_text("old\n")
    with AtomicWriter(target) as out:
        out.write_json_line({"text": "caf\u00e9 \ud800"})  # a lone surrogate is written back as its JSON escape
        out.flush()
        (partial,) = target.parent.glob("out.jsonl.*.partial")
        assert partial.read_text(encoding="utf-8") == '{"text": "café \\ud800"}\n'
        assert target.read_text() == "old\n"
    assert target.read_text(encoding="utf-8") == '{"text": "café \\ud800"}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.jsonl"]


def test_atomic_writer_keeps_the_partial_file_on_failure_and_names_it(tmp_path):
    target = tmp_path / "new" / "out.jsonl"  # the folder is created
    writer = AtomicWriter(target)
    with pytest.raises(RuntimeError) as info, writer:
        writer.write("line 1\n")
        raise RuntimeError("boom")
    assert not target.exists()
    assert writer.partial is not None and writer.partial.read_text() == "line 1\n"
    if hasattr(info.value, "add_note"):
        assert f"the output written so far is in {writer.partial}" in info.value.__notes__[0]
    # nothing written: nothing kept
    empty = AtomicWriter(tmp_path / "e.jsonl")
    with pytest.raises(KeyboardInterrupt), empty:
        raise KeyboardInterrupt
    assert empty.partial is None and sorted(p.name for p in tmp_path.iterdir()) == ["new"]


def test_atomic_writer_misuse_raises(tmp_path):
    writer = AtomicWriter(tmp_path / "x")
    with pytest.raises(RuntimeError, match="not open"):
        writer.write("x")
    writer.open()
    with pytest.raises(RuntimeError, match="already open"):
        writer.open()
    assert writer.abort(keep=False) is None and list(tmp_path.iterdir()) == []
