"""The C++ kernels' team under contention (csrc/common/threads.*): the decision is driven
here with made-up clock and CPU-time readings, so nothing depends on how busy the
machine running the tests is."""
import os
import subprocess
import sys
import time

import pytest
import torch

from effseg import _native

MS = 1_000_000
WINDOW = 100 * MS


@pytest.fixture
def C(require_backend):
    require_backend("cpp")
    return _native.require()


def _replay(C, configured, cpus, busy_cores):
    """Teams after windows in which other processes kept `b` cores busy, b in busy_cores."""
    readings, others = [(0, 0)], 0
    for i, b in enumerate(busy_cores, 1):
        others += int(b * WINDOW)
        readings.append((i * WINDOW, others))
    return C._gauge_replay(configured, cpus, readings)[1:]


def test_a_quiet_machine_keeps_the_full_team(C):
    assert _replay(C, 2, 2, [0.0, 0.02, 0.3, 0.0]) == [2, 2, 2, 2]
    assert _replay(C, 8, 8, [0.0, 0.4]) == [8, 8]


def test_the_team_is_the_cores_other_processes_leave(C):
    # one busy competitor on 2 cores: one thread; 3 busy of 8: five
    assert _replay(C, 2, 2, [1.0, 0.95, 1.1]) == [1, 1, 1]
    assert _replay(C, 8, 8, [3.0]) == [5]
    # never below one thread, never above the setting
    assert _replay(C, 4, 4, [6.0]) == [1]
    assert _replay(C, 2, 16, [3.0]) == [2]


def test_the_full_team_comes_back_when_the_competitor_leaves(C):
    assert _replay(C, 2, 2, [1.0, 1.0, 0.0, 0.05]) == [1, 1, 2, 2]


def test_readings_closer_than_a_window_change_nothing(C):
    readings = [(0, 0), (WINDOW // 2, WINDOW), (WINDOW - 1, 2 * WINDOW)]
    assert C._gauge_replay(2, 2, readings) == [2, 2, 2]


def test_a_clock_going_back_restarts_the_window(C):
    assert C._gauge_replay(2, 2, [(5 * WINDOW, 10 * WINDOW), (0, 0), (WINDOW, 0)]) == [2, 2, 2]


def test_tick_granularity_cannot_make_busy_time_negative(C):
    # /proc/stat's ticks lag this process's ns clock: a window's difference may dip below 0
    assert C._gauge_replay(2, 2, [(0, 5 * MS), (WINDOW, -5 * MS)]) == [2, 2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_others_cpu_reads_this_machine(C):
    ns, cpus = C._others_cpu()
    assert 1 <= cpus <= (os.cpu_count() or 1) and cpus == len(os.sched_getaffinity(0))
    # cumulative since boot, less this process's CPU time: bounded by wall time x CPUs
    assert -cpus * 10**9 < ns < cpus * time.clock_gettime_ns(time.CLOCK_BOOTTIME) + 10**9


def _busy_ticks(cpus: set) -> int:
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
                total += user + nice + system + irq + softirq + steal
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_this_process_busy_is_not_another_process(C):
    """Our own threads working or spinning (PyTorch's OpenMP workers after an op; here a
    matmul loop) must not read as a competitor: judged on its own run-queue wait, the
    team halved on a quiet machine. The figure equals the machine's busy time less this
    process's CPU time, computed here apart from the C++ code."""
    allowed = os.sched_getaffinity(0)
    hz = os.sysconf("SC_CLK_TCK")
    a = torch.randn(256, 256)
    ns0, cpus = C._others_cpu()
    ticks0, self0, t0 = _busy_ticks(allowed), time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < 0.3:
        a = (a @ a).clamp_(-1, 1)
    ns1, _ = C._others_cpu()
    ticks1, self1, t1 = _busy_ticks(allowed), time.process_time(), time.perf_counter()
    wall = t1 - t0
    others = (ns1 - ns0) / 1e9 / wall
    expected = ((ticks1 - ticks0) / hz - (self1 - self0)) / wall
    own = (self1 - self0) / wall
    assert own > 0.5  # the loop kept at least half a core busy, all of it this process's
    # 10 ms ticks over a 0.3 s window, and the two readings not quite simultaneous
    assert abs(others - expected) < 0.25 * cpus, (others, expected, own)


def test_the_team_never_exceeds_the_setting_and_the_switch_works(C):
    assert C.adaptive_threads() and C.build_info()["adaptive_threads"]
    before = C.get_num_threads()
    try:
        C.set_num_threads(1)
        assert C.team_threads() == 1
        C.set_adaptive_threads(False)
        C.set_num_threads(3)
        assert C.team_threads() == 3  # no adapting: the setting, however busy the machine
    finally:
        C.set_adaptive_threads(True)
        C.set_num_threads(0)
    assert C.get_num_threads() == before


def test_the_environment_turns_adapting_off(require_backend):
    require_backend("cpp")
    code = "import effseg, effseg._native as n; print(n.require().adaptive_threads())"
    env = dict(os.environ, EFFSEG_ADAPTIVE_THREADS="0")
    # -P: the installed effseg (with effseg._C), not a checkout in the working folder
    out = subprocess.run([sys.executable, "-P", "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_kernels_agree_with_themselves_on_any_team(C):
    from effseg.ops.depthwise_conv2d import depthwise_conv2d

    torch.manual_seed(0)
    x, w = torch.randn(1, 16, 64, 64), torch.randn(16, 1, 7, 7)  # above the kernel's serial threshold
    try:
        C.set_adaptive_threads(False)
        C.set_num_threads(2)
        two = depthwise_conv2d(x, w, padding=3, backend="cpp")
        C.set_num_threads(1)
        one = depthwise_conv2d(x, w, padding=3, backend="cpp")
    finally:
        C.set_adaptive_threads(True)
        C.set_num_threads(0)
    torch.testing.assert_close(two, one)


def test_team_threads_for_another_pool_follows_the_same_switch(C):
    try:
        C.set_adaptive_threads(False)
        assert C.team_threads_for(7) == 7 and C.team_threads_for(1) == 1
        C.set_adaptive_threads(True)
        assert 1 <= C.team_threads_for(2) <= 2
    finally:
        C.set_adaptive_threads(True)


def test_compiled_eager_cuts_torch_team_only_for_the_call(C, monkeypatch):
    import effseg
    from effseg.compile import threads

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
    x = torch.randn(1, 3, 16, 16)
    cm = effseg.compile(model, example_input=x, backend="eager", check=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)  # the user's setting
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setattr(threads._native, "require", lambda: C)
    # a gauge that sees one core left: one thread for the call, then the setting again
    monkeypatch.setattr(C, "team_threads_for", lambda k: 1, raising=False)
    torch.testing.assert_close(cm(x), model(x))
    assert calls == [1, 4]
    calls.clear()
    monkeypatch.setattr(C, "team_threads_for", lambda k: k, raising=False)  # quiet: untouched
    cm(x)
    assert calls == []
    try:
        C.set_adaptive_threads(False)
        monkeypatch.setattr(C, "team_threads_for", lambda k: 1, raising=False)
        cm(x)
        assert calls == []  # adapting off: the full team whatever the gauge says
    finally:
        C.set_adaptive_threads(True)
    with threads.torch_team(torch.device("cpu")) as team:
        assert team == 1 and calls == [1]
    assert calls == [1, 4]
