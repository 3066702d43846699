"""The option check every configurable backend's build starts with."""
from __future__ import annotations


def check_options(backend: str, options, keys) -> None:
    """TypeError naming the backend and its accepted options when `options` has others."""
    bad = set(options) - set(keys)
    if bad:
        raise TypeError(f"backend {backend!r} options must be among {sorted(keys)}, got {sorted(bad)}")
