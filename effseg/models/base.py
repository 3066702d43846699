"""Shared input handling for the zoo's segmentation nets."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class SegmentationModel(nn.Module):
    """Base for zoo models: subclasses implement `forward_logits(x)` on inputs whose H and
    W are multiples of `size_multiple`; `forward` checks the input, pads other sizes on
    the bottom/right (reflect, or replicate when the image is too small to reflect) and
    crops every full-resolution output back, so any H, W works.

    In training mode a model may return (logits, aux...) as its original does.
    """
    size_multiple: int = 32

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        for arg, v in (("in_channels", in_channels), ("num_classes", num_classes)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{arg} must be an int >= 1, got {v!r}")
        self.in_channels, self.num_classes = in_channels, num_classes

    def forward_logits(self, x: Tensor):
        raise NotImplementedError

    def forward(self, x: Tensor):
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (B, {self.in_channels}, H, W) (in_channels="
                             f"{self.in_channels}), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
        h, w = x.shape[-2:]
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph == 0 and pw == 0:
            return self.forward_logits(x)
        mode = "reflect" if ph < h and pw < w else "replicate"
        out = self.forward_logits(F.pad(x, (0, pw, 0, ph), mode=mode))
        return _crop(out, h + ph, w + pw, h, w)


def _crop(out, hp, wp, h, w):
    if isinstance(out, (tuple, list)):
        return type(out)(_crop(o, hp, wp, h, w) for o in out)
    if isinstance(out, Tensor) and out.dim() == 4 and tuple(out.shape[-2:]) == (hp, wp):
        return out[..., :h, :w]
    return out
