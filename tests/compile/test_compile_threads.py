"""A compiled model called from many threads: every caller gets the answer for its own
input (an ORT backend with one shared binding and output buffer returned other threads'
outputs and mixtures of them), and shapes captured while other threads call are built once."""
from __future__ import annotations

import threading

import pytest
import torch
from compile_cases import NETS, seeded

import effseg

THREADS, CALLS = 4, 12


def _inputs(shape, n, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) for _ in range(n)]


def _hammer(cm, jobs):
    """Run jobs[t] (lists of inputs) on thread t, all threads released together; return
    each thread's outputs and any exception."""
    results, errors = [None] * len(jobs), []
    start = threading.Barrier(len(jobs))

    def work(t):
        try:
            start.wait()
            results[t] = [cm(x) for x in jobs[t]]
        except Exception as exc:  # noqa: BLE001  reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(len(jobs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    return results


def _assert_own_answers(model, jobs, results):
    with torch.no_grad():
        for xs, outs in zip(jobs, results):
            for x, got in zip(xs, outs):
                want = model(x)
                assert (got - want).abs().max().item() <= 1e-4 * want.abs().max().item()


@pytest.mark.parametrize(("backend", "options"), [
    ("onnxruntime", {}), ("onnxruntime", {"reuse_outputs": True}), ("eager", {}), ("inductor", {})])
def test_threads_get_their_own_outputs(backend, options):
    model = seeded(NETS["conv_bn_relu"](cout=16))
    shape = (1, 3, 64, 64)
    cm = effseg.compile(model, input_shape=shape, backend=backend, **options)
    jobs = [_inputs(shape, CALLS, seed=t) for t in range(THREADS)]
    results = _hammer(cm, jobs)
    if options.get("reuse_outputs"):
        # Each thread's buffer holds its own latest output: only that one is still valid.
        jobs = [xs[-1:] for xs in jobs]
        results = [outs[-1:] for outs in results]
    _assert_own_answers(model, jobs, results)
    assert cm.report()["calls"] == THREADS * CALLS


def test_new_shapes_captured_while_other_threads_call():
    model = seeded(NETS["conv_bn_relu"]())
    cm = effseg.compile(model, input_shape=(1, 3, 16, 16), backend="onnxruntime")
    # Two threads keep calling the compiled shape; two others bring the same two new
    # shapes at once: each new shape is captured once, and everyone's answers are theirs.
    jobs = [_inputs((1, 3, 16, 16), CALLS, seed=0), _inputs((1, 3, 16, 16), CALLS, seed=1),
            _inputs((1, 3, 24, 16), 3, seed=2) + _inputs((1, 3, 16, 24), 3, seed=3),
            _inputs((1, 3, 16, 24), 3, seed=4) + _inputs((1, 3, 24, 16), 3, seed=5)]
    results = _hammer(cm, jobs)
    _assert_own_answers(model, jobs, results)
    shapes = sorted(tuple(s["shape"]) for s in cm.report()["specialisations"])
    assert shapes == [(1, 3, 16, 16), (1, 3, 16, 24), (1, 3, 24, 16)]
