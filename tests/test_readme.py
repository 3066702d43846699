"""README.md's API example must run as written."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_api_example_runs():
    if not README.exists():
        pytest.skip(f"{README} is not present (tests run outside the checkout)")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README.md has no python example"
    exec(compile(blocks[0], str(README), "exec"), {})


def test_readme_compile_example_runs():
    if not README.exists():
        pytest.skip(f"{README} is not present (tests run outside the checkout)")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
              if "effseg.compile(" in b]
    assert blocks, "README.md has no effseg.compile example"
    scope: dict = {}
    exec(compile(blocks[0], str(README), "exec"), scope)
    assert scope["y"].shape == (1, 6, 256, 256)
    assert scope["fast"].report()["parity"]["rel_err"] <= 1e-4
