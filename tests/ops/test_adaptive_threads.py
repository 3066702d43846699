"""The C++ kernels' team under contention (csrc/common/threads.*): the decision is driven
here with made-up clock and run-queue readings, so nothing depends on how busy the
machine running the tests is."""
import os
import subprocess
import sys

import pytest
import torch

from effseg import _native

MS = 1_000_000
WINDOW = 10 * MS
HOLD = 1000 * MS


@pytest.fixture
def C(require_backend):
    require_backend("cpp")
    return _native.require()


def test_a_quiet_thread_keeps_the_full_team(C):
    readings = [(i * WINDOW, i * MS // 2) for i in range(6)]  # 5% of each window waiting
    assert C._gauge_replay(8, readings) == [8] * 6


def test_waiting_for_a_core_halves_the_team_each_window(C):
    readings = [(i * WINDOW, i * 3 * MS) for i in range(5)]  # 30% waiting
    assert C._gauge_replay(8, readings) == [8, 4, 2, 1, 1]


def test_the_full_team_comes_back_after_the_hold_and_not_before(C):
    busy = [(0, 0), (WINDOW, 5 * MS)]
    quiet_early = [(2 * WINDOW, 5 * MS)]  # quiet, but within the hold
    quiet_late = [(WINDOW + HOLD + WINDOW, 5 * MS)]
    assert C._gauge_replay(4, busy + quiet_early + quiet_late) == [4, 2, 2, 4]


def test_readings_closer_than_a_window_change_nothing(C):
    assert C._gauge_replay(4, [(0, 0), (WINDOW // 2, WINDOW // 2), (WINDOW - 1, WINDOW - 1)]) == [4, 4, 4]


def test_a_clock_going_back_restarts_the_window(C):
    assert C._gauge_replay(4, [(5 * WINDOW, 10 * MS), (0, 0), (WINDOW, 0)]) == [4, 4, 4]


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
