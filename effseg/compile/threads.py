"""PyTorch's intra-op team under contention, for the compiled callable's eager and
Inductor backends.

A model run by PyTorch's own kernels forks its OpenMP team for every op; with another
process busy on a small machine, each fork-join waits for a descheduled thread while the
others spin (measured 8-11x slower calls on 2 cores with one busy competitor,
bench/results/contention-cpu.json). For the length of one call, the team is cut to the
cores other processes leave free, by the same gauge as effseg's C++ kernels
(csrc/common/threads.*), then restored: the user's setting is what PyTorch has between
calls. A quiet machine keeps the full team."""
from __future__ import annotations

import contextlib

import torch

from .. import _native


@contextlib.contextmanager
def torch_team(device: torch.device):
    n = torch.get_num_threads()
    if torch.device(device).type != "cpu" or n <= 1 or not _native.available():
        yield n
        return
    c = _native.require()
    team = c.team_threads_for(n) if c.adaptive_threads() else n
    if team >= n:
        yield n
        return
    torch.set_num_threads(team)
    try:
        yield team
    finally:
        torch.set_num_threads(n)
