"""Share of each zoo model's convolution FLOPs that effseg's winograd_conv2d pass can take
(dense 3x3, stride 1, dilation 1, groups 1, >= 16 channels) at 512x512, from one forward
pass with hooks. Explains where the pass can and cannot help (bench/bench_compile.py).

    python scripts/conv_flop_share.py [MODEL ...]
"""
from __future__ import annotations

import argparse
import collections

import torch
from torch import nn

import effseg
from effseg.passes.winograd_conv2d import MIN_CHANNELS


def shares(name: str, size: int = 512) -> dict:
    model = effseg.create_model(name, 6).eval()
    flops: collections.Counter = collections.Counter()

    def hook(mod, args, out):
        k = mod.weight.shape
        eligible = (tuple(k[2:]) == (3, 3) and mod.stride == (1, 1) and mod.dilation == (1, 1)
                    and mod.groups == 1 and min(k[0], k[1]) >= MIN_CHANNELS)
        flops["winograd" if eligible else f"other {k[2]}x{k[3]}"] += 2 * out.numel() * k[1] * k[2] * k[3]

    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            mod.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.randn(1, 3, size, size))
    total = sum(flops.values())
    return {"conv_gflops": total / 1e9, **{k: v / total for k, v in flops.most_common()}}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("models", nargs="*", default=["unetformer", "abcnet", "banet", "manet", "cmunet"])
    for name in p.parse_args().models:
        s = shares(name)
        parts = ", ".join(f"{k} {v:.0%}" for k, v in s.items() if k != "conv_gflops")
        print(f"{name}: {s['conv_gflops']:.1f} conv GFLOPs; {parts}")


if __name__ == "__main__":
    main()
