"""effseg.runtime.signal_stack: each thread's alternate signal stack is one effseg keeps
alive, set after OpenVINO compiles (its CPU plugin swaps in one it can release) and
before effseg bench arms its setup alarm; a signal is then delivered, not a crash."""
from __future__ import annotations

import gc
import sys
import threading
import time

import pytest

from effseg.runtime import signal_stack as ss

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack via libc: Linux only")


def _ours() -> bool:
    addr, flags, size = ss.current()
    buf = ss._stacks.get(threading.get_ident())
    return buf is not None and addr == ss.ctypes.addressof(buf) and size == ss.ctypes.sizeof(buf) and flags == 0


@linux
def test_keep_sets_one_live_stack_per_thread():
    assert ss.keep_signal_stack() is True and _ours()
    first = ss.current()
    assert ss.keep_signal_stack() is True and ss.current() == first  # made once, reused
    assert first[2] >= 256 * 1024
    seen = {}

    def other():
        seen["ok"] = ss.keep_signal_stack() and _ours()
        seen["addr"] = ss.current()[0]

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen["ok"] and seen["addr"] != first[0]


@linux
def test_signals_are_delivered_after_openvino_models_come_and_go():
    pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")
    import torch

    import effseg
    from effseg.bench.contenders import SetupTimeout, deadline

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    models = [effseg.compile(net, input_shape=(1, 3, 8 + i, 8), backend="openvino", autotune=False)
              for i in range(3)]
    assert _ours()  # set again after the plugin compiled
    with torch.no_grad():
        for m in models:
            m(torch.randn(1, 3, 8 + models.index(m), 8))
    del models[1], models[0]  # released out of the order they were made
    gc.collect()
    t0 = time.perf_counter()
    with pytest.raises(SetupTimeout), deadline(0.2):
        while time.perf_counter() - t0 < 10:
            time.sleep(0.01)
    assert time.perf_counter() - t0 < 5 and _ours()
