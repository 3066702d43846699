"""effseg._timing.sample_ms (per-iteration timing, synchronised on CUDA) and the
peak-memory helpers. The CUDA test replaces torch.cuda's Event and synchronize with
recorders: it checks the helper's calls, it makes no claim about a GPU."""
import pytest
import torch

from effseg import _timing as timing
from effseg.bench import memory


def test_sample_ms_cpu_counts_calls():
    calls = []
    times = timing.sample_ms(lambda: calls.append(1), "cpu", iters=4, warmup=2)
    assert len(calls) == 6 and len(times) == 4 and all(t >= 0 for t in times)
    with pytest.raises(ValueError, match="iters"):
        timing.sample_ms(lambda: None, "cpu", iters=0)


def test_sample_ms_cuda_synchronises_each_iteration(monkeypatch):
    log = []

    class FakeEvent:
        count = 0

        def __init__(self, enable_timing=False):
            assert enable_timing
            FakeEvent.count += 1
            self.id = FakeEvent.count

        def record(self):
            log.append(("record", self.id))

        def synchronize(self):
            log.append(("event_sync", self.id))

        def elapsed_time(self, end):
            log.append(("elapsed", self.id, end.id))
            return 2.5

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: log.append(("device_sync",)))
    times = timing.sample_ms(lambda: log.append(("call",)), "cuda", iters=3, warmup=1)
    assert times == [2.5, 2.5, 2.5]
    # Warm-up: call, then a device synchronise.
    assert log[:2] == [("call",), ("device_sync",)]
    timed = log[2:]
    assert len(timed) == 3 * 6
    for i in range(3):
        s, e = 2 * i + 1, 2 * i + 2
        assert timed[6 * i: 6 * i + 6] == [("device_sync",), ("record", s), ("call",),
                                           ("record", e), ("event_sync", e), ("elapsed", s, e)]


def test_host_peak_tracks_an_allocation():
    import mmap

    hp = memory.HostPeak()
    hp.start()
    # 256 MB mapped and touched page by page: an anonymous mapping goes back to the OS on
    # close whatever the malloc thresholds (CI raises them, so a freed tensor would stay
    # resident and the reset below could not lower the mark).
    size = 256 * 2**20
    buf = mmap.mmap(-1, size)
    for i in range(0, size, mmap.PAGESIZE):
        buf[i] = 1
    peak, start = hp.stop()
    assert peak - start >= 200, (peak, start, hp.method)
    buf.close()
    if hp.method.startswith("VmHWM"):
        hp.start()
        small, _ = hp.stop()
        assert small < peak, "the reset did not lower the high-water mark"


def test_gpu_memory_is_none_on_cpu():
    memory.gpu_reset("cpu")
    assert memory.gpu_peak_mb("cpu") is None
