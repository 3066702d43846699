"""`effseg bench` end to end on a tiny model (in-process and once as a real command, which
re-executes itself with raised malloc thresholds), argument errors, and --op."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from effseg.cli import main

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
TINY = ["--model", "bench_nets:tiny_net", "--size", "32", "--iters", "2", "--warmup", "0",
        "--no-progress"]


def test_quick_end_to_end(tmp_path, capsys):
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    args = ["bench", "--quick", *TINY, "--backends", "eager", "effseg.eager", "--out", str(out),
            "--markdown"]
    try:
        import matplotlib  # noqa: F401
        args += ["--plot", str(png)]
    except ImportError:
        png = None
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "median ms" in text and "x best peer" in text and "| backend |" in text
    data = json.loads(out.read_text())
    assert [r["backend"] for r in data["rows"]] == ["eager", "effseg.eager"]
    assert all(r["error"] is None for r in data["rows"])
    assert data["config"]["preset"] == "quick" and data["command"][:2] == ["effseg", "bench"]
    if png is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_reexecs_with_malloc_thresholds(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("EFFSEG_BENCH_NO_REEXEC", None)
    env["PYTHONPATH"] = os.pathsep.join([str(HELPERS), env.get("PYTHONPATH", "")])
    out = tmp_path / "r.json"
    code = "import sys; from effseg.cli import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", code, "bench", *TINY, "--backends", "eager",
                           "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    alloc = json.loads(out.read_text())["allocator"]
    assert alloc["env"]["MALLOC_MMAP_THRESHOLD_"] == "17179869184"
    assert "re-executed" in alloc["set_by"]


def test_argument_errors(capsys, tmp_path):
    assert main(["bench", "--model", str(tmp_path / "w.ckpt"), "--no-progress"]) == 2
    assert "--arch" in capsys.readouterr().err
    assert main(["bench", "--model", "bench_nets:not_a_module", "--no-progress"]) == 2
    assert "nn.Module" in capsys.readouterr().err
    assert main(["bench", "--quick", "--full"]) == 2
    with pytest.raises(SystemExit):
        main(["bench", "--dtype", "fp8"])


@pytest.mark.parametrize("op", ["selective_scan", "cross_selective_scan", "depthwise_conv2d"])
def test_op_bench_runs_the_scripts_code(monkeypatch, capsys, op):
    """`effseg bench --op` parses its flags with the bench/ scripts' parser and calls the
    same effseg/bench/<op>.py run(), at the quick shapes unless --full."""
    from effseg.bench import script

    seen = {}

    def fake_run(args):
        seen.update(device=args.device, quick=args.quick, repeats=args.repeats)
        return {"op": op, "results": []}

    monkeypatch.setattr(script.op_module(op), "run", fake_run)
    monkeypatch.setattr(script.op_module(op), "targets", lambda result: {"checked": True})
    assert main(["bench", "--op", op, "--repeats", "2"]) == 0
    assert seen == {"device": "cpu", "quick": True, "repeats": 2}
    out = json.loads(capsys.readouterr().out)
    assert out["op"] == op and out["targets"] == {"checked": True} and out["quick"] is True
    assert main(["bench", "--op", op, "--full"]) == 0 and seen["quick"] is False


def test_every_op_has_a_script_and_a_module():
    from effseg.bench import script

    bench = Path(__file__).resolve().parents[2] / "bench"
    for op in script.OPS:
        mod = script.op_module(op)
        assert callable(mod.run) and callable(mod.targets), op
        assert (bench / f"bench_{op}.py").is_file(), op
