"""Tiny models for `effseg bench` tests, reachable as --model bench_nets:<name> (tests/helpers
is on sys.path)."""
import torch
from torch import nn


def tiny_net() -> nn.Module:
    """Conv-BN-ReLU and a 1x1 head: 4 classes, plain PyTorch ops only (exports anywhere)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 4, 1))


def not_a_module():
    return "not a module"


class Broken(RuntimeError):
    pass


def failing_builder(ctx):
    """A contender whose setup raises, as a missing library or a failed export does."""
    raise Broken("this backend is broken on purpose")


def stubborn_builder(ctx):
    """A setup that swallows ordinary exceptions and never finishes (a hung export with a
    fallback): only the setup time limit ends it."""
    import time

    while True:
        try:
            time.sleep(0.05)
        except Exception:  # noqa: BLE001, S112  deliberately stubborn
            continue
