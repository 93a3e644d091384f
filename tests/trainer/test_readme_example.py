"""The README's trainer example runs as written and does what it says."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_trainer_example_runs_and_learns(capsys):
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- trainer-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its <!-- trainer-example --> block"
    scope: dict = {}
    exec(compile(match.group(1), str(README), "exec"), scope)
    assert scope["after"] > scope["before"] + 0.2
    assert "digit share" in capsys.readouterr().out
