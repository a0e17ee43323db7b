"""The README's ten-line example runs as printed and says what the README says it says."""
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs_and_matches_its_printed_table(capsys):
    text = README.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.split()
    printed = re.search(r"prints .*?```\n(.*?)```", text, re.S).group(1).split()
    assert out == printed
