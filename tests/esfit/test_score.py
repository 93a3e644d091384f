"""`esfit score` end to end through click's runner, with real extraction on a tiny corpus."""

from __future__ import annotations

import json

from click.testing import CliRunner

from esfit.cli import main
from infoextract import Record, write_records

HUMAN = [
    Record("q1", "Marie Curie won the Nobel Prize in Physics in 1903 with Pierre Curie.", prompt="What did Curie win?"),
    Record("q1", "In 1903 Marie Curie shared the Nobel Prize in Physics.", prompt="What did Curie win?"),
    Record("q1", "She won the 1903 Nobel Prize in Physics and the 1911 prize in Chemistry.", prompt="What did Curie win?"),
    Record("q2", "The Danube flows through Vienna and Budapest into the Black Sea.", prompt="Where does the Danube flow?"),
    Record("q2", "It passes Vienna, Bratislava and Budapest before the Black Sea.", prompt="Where does the Danube flow?"),
]
MODEL = [
    Record("q1", "Marie Curie won the Nobel Prize in Physics in 1903.", author="good"),
    Record("q1", "What did Curie win? What did Curie win?", author="copy"),
    Record("q2", "The Danube flows through Vienna and Budapest.", author="good"),
    Record("q2", "", author="copy"),
]


def test_score_table_json_report(tmp_path):
    refs, cands = tmp_path / "human.jsonl", tmp_path / "model.jsonl"
    write_records(HUMAN, refs)
    write_records(MODEL, cands)
    out_json, out_html = tmp_path / "new" / "s.json", tmp_path / "r.html"  # a missing folder is created
    result = CliRunner().invoke(main, [
        "score", "--references", str(refs), "--candidates", str(cands), "--by-author", "--n-boot", "50",
        "--json", str(out_json), "--report", str(out_html),
    ])
    assert result.exit_code == 0, result.output
    assert "f1_at_k" in result.output and "good" in result.output and "copy" in result.output
    data = json.loads(out_json.read_text())
    assert set(data["aggregate"]) == {"fitness", "components", "ci"}
    assert len(data["prompts"]) == 2
    good, copy = data["by_author"]["good"]["aggregate"], data["by_author"]["copy"]["aggregate"]
    assert good["fitness"] > copy["fitness"]
    assert out_html.read_text().startswith("<!doctype html>")


def test_score_errors_are_clear(tmp_path):
    refs = tmp_path / "human.jsonl"
    write_records(HUMAN, refs)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt_id": "q1"}\nnot json\n')
    runner = CliRunner()
    r = runner.invoke(main, ["score", "-r", str(refs), "-c", str(bad)])
    assert r.exit_code != 0 and "missing required field 'text'" in r.output and ":2:" in r.output
    r = runner.invoke(main, ["score", "-r", str(refs), "-c", str(refs), "--fitness", "bleu"])
    assert r.exit_code != 0 and "known components" in r.output


PLUGIN = '''
from fitness import register

@register("entity_coverage_test", higher_is_better=True)
def entity_coverage(*, min_share: float = 0.5):
    def component(ctx) -> float:
        refs = [{f.key for f in e.by_kind("entity")} for e in ctx.references]
        wanted = {k for k in set().union(*refs) if sum(k in r for r in refs) >= min_share * len(refs)}
        if not wanted or not ctx.candidates:
            return 0.0
        said = [{f.key for f in e.by_kind("entity")} for e in ctx.candidates]
        return sum(len(wanted & s) / len(wanted) for s in said) / len(said)

    return component
'''


def test_score_loads_a_plugin_named_with_plugins(tmp_path):
    """The README's "Writing your own fitness component" example, through `esfit score --plugins`."""
    refs, cands = tmp_path / "human.jsonl", tmp_path / "model.jsonl"
    write_records(HUMAN, refs)
    write_records(MODEL, cands)
    plugin = tmp_path / "my_components.py"
    plugin.write_text(PLUGIN)
    args = ["score", "-r", str(refs), "-c", str(cands), "--n-boot", "20", "--fitness", "entity_coverage_test:1 + f1_at_k:1"]
    result = CliRunner().invoke(main, args)  # without the plugin the component does not exist
    assert result.exit_code == 2 and "unknown fitness component 'entity_coverage_test'" in result.output
    result = CliRunner().invoke(main, [*args, "--plugins", str(plugin)])
    assert result.exit_code == 0, result.output
    assert "entity_coverage_test" in result.output and "f1_at_k" in result.output
