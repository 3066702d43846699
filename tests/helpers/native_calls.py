"""Counting the calls a model makes into the C++ module (effseg._C)."""
from __future__ import annotations

from collections import Counter

import effseg._native as native


class _CountingModule:
    """Stands in for effseg._C: forwards everything, counting calls per entry point."""

    def __init__(self, real, calls: Counter):
        self._real, self._calls = real, calls

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self._calls[name] += 1
            return attr(*args, **kwargs)
        return counted


def count_native_calls(monkeypatch) -> Counter:
    """Route effseg._native.require() through a counter for the rest of the test."""
    calls: Counter = Counter()
    monkeypatch.setattr(native, "_C", _CountingModule(native.require(), calls))
    return calls
