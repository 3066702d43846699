"""The extras say what users do, and the runtime installs without torch."""
import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def project():
    path = ROOT / "pyproject.toml"
    if not path.exists():
        pytest.skip(f"{path} is not present (tests run outside the checkout)")
    return tomllib.loads(path.read_text())["project"]


def _names(reqs):
    return {re.split(r"[<>=\[; ]", r, maxsplit=1)[0].lower() for r in reqs}


def test_runtime_extra_is_torch_free_and_complete(project):
    assert "torch" not in _names(project["dependencies"])
    runtime = _names(project["optional-dependencies"]["runtime"])
    assert {"numpy", "pillow", "onnxruntime"} <= runtime and "torch" not in runtime


def test_extras_for_what_users_do(project):
    extras = project["optional-dependencies"]
    assert {"runtime", "export", "geo", "train", "dev", "all"} <= set(extras)
    for name in ("export", "train", "dev", "triton", "all"):
        assert "torch" in _names(extras[name]), f"extra {name!r} needs torch but does not name it"
    named = set().union(*(_names(v) for k, v in extras.items() if k not in ("all", "trt")))
    assert named <= _names(extras["all"]), named - _names(extras["all"])


def test_readme_installs_name_existing_extras(project):
    readme = (ROOT / "README.md").read_text()
    used = set()
    for line in readme.splitlines():
        if "pip install" in line:
            for group in re.findall(r"(?:effseg|\.)\[([a-z,]+)\]", line):
                used |= set(group.split(","))
    assert used, "README shows no install with extras"
    assert used <= set(project["optional-dependencies"]), used - set(project["optional-dependencies"])
