"""No effseg command imports code from the working folder: `effseg bench` restarts itself
(raised malloc thresholds), and that restart must not put the working folder on sys.path,
where an argparse.py or numpy.py dropped there would run with the user's rights."""
import os
import subprocess
import sys

import pytest

from effseg.bench import script

# Modules the restarted `effseg bench` (or Python's start-up) would import by these names.
PLANTED = ("argparse", "numpy", "json", "sitecustomize", "usercustomize", "effseg")


def _plant(folder):
    for name in PLANTED:
        marker = folder / f"IMPORTED_{name}"
        (folder / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').write('planted')\n")
    return folder


def _markers(folder):
    return sorted(p.name for p in folder.glob("IMPORTED_*"))


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("EFFSEG_BENCH_NO_REEXEC", None)
    env.pop("PYTHONSAFEPATH", None)
    return env


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="effseg bench re-executes on Linux only")
def test_bench_reexec_ignores_planted_modules(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    _plant(work)
    # A launcher outside the working folder, as the `effseg` console script is: Python puts
    # the script's folder on sys.path, not the working folder.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "effseg_launcher.py"
    launcher.write_text("import sys\nfrom effseg.cli import main\nsys.exit(main())\n")
    proc = subprocess.run([sys.executable, str(launcher), "bench", "--help"], cwd=work, env=_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    assert _markers(work) == []
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: effseg bench" in proc.stdout


@pytest.mark.parametrize("python_3_10", [False, True], ids=["with -P", "-I (3.10 has no -P)"])
def test_reexec_command_ignores_planted_modules(tmp_path, monkeypatch, python_3_10):
    """The exact command `effseg bench` execs, run from a folder full of planted modules;
    with -I it is what Python 3.10 (which has no -P) runs."""
    work = tmp_path / "work"
    work.mkdir()
    _plant(work)
    seen = {}

    def fake_execve(path, args, env):
        seen.update(path=path, args=args, env=env)
        raise SystemExit(0)

    monkeypatch.chdir(work)
    monkeypatch.setattr(script.os, "execve", fake_execve)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("EFFSEG_BENCH_NO_REEXEC", raising=False)
    if python_3_10:
        monkeypatch.setattr(script.sys, "version_info", (3, 10, 14))
    with pytest.raises(SystemExit):
        script.reexec_with_raised_malloc(["-m", "effseg.cli", "bench", "--help"], "effseg bench")
    assert seen["args"][1] == ("-I" if python_3_10 else "-P")
    proc = subprocess.run(seen["args"], cwd=work, env=seen["env"], capture_output=True, text=True,
                          timeout=300, check=False)
    assert _markers(work) == []
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: effseg bench" in proc.stdout
