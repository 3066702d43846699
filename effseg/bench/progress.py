"""A progress line per finished case for the op benchmarks (tqdm when installed)."""
from __future__ import annotations


def progress(total: int, enabled: bool):
    """step(msg) to call once per finished case; a no-op when not enabled."""
    if not enabled:
        return lambda msg: None
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        bar = tqdm(total=total, unit="case")

        def step(msg):
            bar.set_postfix_str(msg)
            bar.update(1)
        return step
    count = [0]

    def step(msg):
        count[0] += 1
        print(f"[{count[0]}/{total}] {msg}", flush=True)
    return step
