"""Small models written the way users write segmentation nets (not effseg's zoo): einsum
attentions, every interpolate mode, adaptive pooling to sizes that do not divide the
input, MultiheadAttention / scaled_dot_product_attention blocks, channel LayerNorm via
permutes, GroupNorm / InstanceNorm / PixelShuffle, grid_sample, a window attention that
pads only when the size is not a multiple of the window, and a two-path (spatial +
context) net. Each is tiny (<= 32x32 inputs, a few channels) so the corpus runs fast.

CORPUS maps a name to (constructor, input shape); the classes after it are the cases
export refuses or compile captures in parts (tests/export/test_user_models.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _cbr(i, o, k=3, s=1):
    return nn.Sequential(nn.Conv2d(i, o, k, s, k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU())


class TaylorAttention(nn.Module):
    """Linear attention with a first-order Taylor kernel over L2-normalised Q and K, in
    einsum form (the formula of GeoSeg-style bilateral nets, written here anew)."""

    def __init__(self, ch, eps=1e-6):
        super().__init__()
        self.q = nn.Conv2d(ch, ch // 2, 1)
        self.k = nn.Conv2d(ch, ch // 2, 1)
        self.v = nn.Conv2d(ch, ch, 1)
        self.gamma = nn.Parameter(torch.tensor(0.5))
        self.eps = eps

    def forward(self, x):
        b, c, h, w = x.shape
        n = h * w
        q = self.q(x).view(b, -1, n)
        k = self.k(x).view(b, -1, n)
        v = self.v(x).view(b, -1, n)
        q = torch.einsum("bcn,bn->bcn", q, 1 / torch.norm(q, 2, dim=-2)).permute(0, 2, 1)
        k = torch.einsum("bcn,bn->bcn", k, 1 / torch.norm(k, 2, dim=-2))
        denom = 1 / (n + torch.einsum("bnc,bc->bn", q, torch.sum(k, dim=-1) + self.eps))
        vsum = torch.einsum("bcn->bc", v).unsqueeze(-1).expand(-1, c, n)
        kv = torch.einsum("bmn,bcn->bmc", k, v)
        num = vsum + torch.einsum("bnm,bmc->bcn", q, kv)
        out = torch.einsum("bcn,bn->bcn", num, denom)
        return x + self.gamma * out.view(b, c, h, w)


class EinsumHeads(nn.Module):
    """Multi-head softmax attention written with einsum (b h n d), as ViT-style code does."""

    def __init__(self, ch=8, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        att = torch.einsum("bhdn,bhdm->bhnm", q, k) * (c // self.heads) ** -0.5
        out = torch.einsum("bhnm,bhdm->bhdn", att.softmax(-1), v)
        return self.proj(out.reshape(b, c, h, w))


class EinsumMix(nn.Module):
    """Einsum as a 1x1 conv with a broadcast bias, a transpose, a trace-like diagonal and
    an outer product: the less common equations users write."""

    def __init__(self, ch=6, out=4):
        super().__init__()
        self.w = nn.Parameter(torch.randn(out, ch) * 0.3)
        self.scale = nn.Parameter(torch.rand(out) + 0.5)
        self.gram_w = nn.Parameter(torch.randn(ch, ch) * 0.1)

    def forward(self, x):
        y = torch.einsum("oc,bchw,o->bohw", self.w, x, self.scale)
        t = torch.einsum("bchw->bhwc", x)
        gram = torch.einsum("bhwc,bhwd->bcd", t, t) / (x.shape[2] * x.shape[3])
        diag = torch.einsum("bcc->bc", gram @ self.gram_w)
        outer = torch.einsum("bo,bc->boc", y.mean((2, 3)), diag)
        return y + outer.sum(-1)[:, :, None, None] + torch.einsum("...chw->...hw", x)[:, None]


class Interp(nn.Module):
    """One upsampling (and one downsampling) in a given mode."""

    def __init__(self, mode, align_corners=None, antialias=False, by_scale=False, ch=3):
        super().__init__()
        self.mode, self.ac, self.aa, self.by_scale = mode, align_corners, antialias, by_scale
        self.conv = nn.Conv2d(ch, 4, 3, padding=1)

    def _resize(self, x, size, scale):
        if self.by_scale:
            return F.interpolate(x, scale_factor=scale, mode=self.mode, align_corners=self.ac, antialias=self.aa)
        return F.interpolate(x, size=size, mode=self.mode, align_corners=self.ac, antialias=self.aa)

    def forward(self, x):
        h, w = x.shape[-2:]
        y = self.conv(x)
        up = self._resize(y, (2 * h, 2 * w), 2.0)
        down = self._resize(up, (h // 2 + 1, w // 2 + 1), 0.3)
        return down


class PSPHead(nn.Module):
    """Pyramid pooling to bins (1, 2, 3, 6) of a 20x20 map: 3 and 6 do not divide 20."""

    def __init__(self, ch=4, bins=(1, 2, 3, 6)):
        super().__init__()
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(ch, 2, 1)) for b in bins)
        self.fuse = nn.Conv2d(ch + 2 * len(bins), 3, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        feats = [x] + [F.interpolate(s(x), size=(h, w), mode="bilinear", align_corners=True) for s in self.stages]
        return self.fuse(torch.cat(feats, 1))


class AdaptivePools(nn.Module):
    """adaptive_avg_pool to non-square, larger-than-half and 1-D-style sizes, and max pool."""

    def forward(self, x):
        a = F.adaptive_avg_pool2d(x, (5, 7))
        b = F.adaptive_avg_pool2d(x, (13, 1))
        c = F.adaptive_max_pool2d(x, (4, 4))
        return a.sum((2, 3)) + b.mean((2, 3)) + c.mean((2, 3))


class MHABlock(nn.Module):
    def __init__(self, ch=8, heads=2):
        super().__init__()
        self.norm = nn.LayerNorm(ch)
        self.attn = nn.MultiheadAttention(ch, heads, batch_first=True)

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.norm(x.flatten(2).transpose(1, 2))
        y, _ = self.attn(t, t, t, need_weights=False)
        return x + y.transpose(1, 2).reshape(b, c, h, w)


class MHASeqFirst(nn.Module):
    """MultiheadAttention with (L, N, E) inputs and the averaged weights requested."""

    def __init__(self, ch=8):
        super().__init__()
        self.attn = nn.MultiheadAttention(ch, 4)

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.flatten(2).permute(2, 0, 1)
        y, weights = self.attn(t, t, t)
        return y.permute(1, 2, 0).reshape(b, c, h, w) + weights.mean()


class SDPABlock(nn.Module):
    def __init__(self, ch=8, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(ch, 3 * ch)

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        q, k, v = self.qkv(t).reshape(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        y2 = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3)
        return (y + y2).transpose(1, 2).reshape(b, h * w, c).transpose(1, 2).reshape(b, c, h, w)


class Norms(nn.Module):
    """LayerNorm over channels through permutes, GroupNorm, InstanceNorm, PixelShuffle."""

    def __init__(self, ch=8):
        super().__init__()
        self.ln = nn.LayerNorm(ch)
        self.gn = nn.GroupNorm(2, ch)
        self.inorm = nn.InstanceNorm2d(ch, affine=True)
        self.up = nn.Sequential(nn.Conv2d(ch, 4 * 2, 1), nn.PixelShuffle(2))
        self.down = nn.PixelUnshuffle(2)

    def forward(self, x):
        x = self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = self.inorm(self.gn(x))
        return self.down(self.up(x))


class FlowWarp(nn.Module):
    """Feature alignment by a predicted flow (grid_sample), as flow-alignment decoders do."""

    def __init__(self, ch=4, mode="bilinear", padding_mode="zeros", align_corners=False):
        super().__init__()
        self.flow = nn.Conv2d(ch, 2, 3, padding=1)
        self.mode, self.pad, self.ac = mode, padding_mode, align_corners

    def forward(self, x):
        b, _, h, w = x.shape
        ys = torch.linspace(-1.0, 1.0, h)
        xs = torch.linspace(-1.0, 1.0, w)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        base = torch.stack((gx, gy), -1).unsqueeze(0).expand(b, h, w, 2)
        grid = base + 0.1 * torch.tanh(self.flow(x)).permute(0, 2, 3, 1)
        return F.grid_sample(x, grid, mode=self.mode, padding_mode=self.pad, align_corners=self.ac)


class WindowAttention(nn.Module):
    """Swin-style local attention: pads H and W up to the window when they do not divide."""

    def __init__(self, ch=8, ws=7):
        super().__init__()
        self.ws = ws
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        ws = self.ws
        if h % ws or w % ws:
            x = F.pad(x, (0, (ws - w % ws) % ws, 0, (ws - h % ws) % ws), mode="reflect")
        hp, wp = x.shape[-2:]
        qkv = self.qkv(x).view(b, 3, c, hp // ws, ws, wp // ws, ws)
        qkv = qkv.permute(1, 0, 3, 5, 4, 6, 2).reshape(3, -1, ws * ws, c)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = (q @ k.transpose(-2, -1)) * c ** -0.5
        out = (att.softmax(-1) @ v).view(b, hp // ws, wp // ws, ws, ws, c)
        out = out.permute(0, 5, 1, 3, 2, 4).reshape(b, c, hp, wp)
        return self.proj(out[:, :, :h, :w])


class DynamicReshape(nn.Module):
    """Shapes read from the tensor at run time: view(-1), flatten, size arithmetic."""

    def __init__(self, ch=4):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        b = x.size(0)
        y = self.conv(x)
        flat = y.view(b, y.size(1), -1)
        att = torch.softmax(flat.mean(1, keepdim=True), dim=-1)
        return (flat * att * flat.shape[-1]).view_as(y) + y.flatten(1).mean(-1).view(-1, 1, 1, 1)


class BilateralNet(nn.Module):
    """A two-path segmentation net: a shallow high-resolution spatial path and a deeper
    context path with Taylor linear attention, fused by channel attention, then a head
    upsampled to the input size."""

    def __init__(self, in_ch=3, num_classes=5, ch=16):
        super().__init__()
        self.in_channels = in_ch
        self.spatial = nn.Sequential(_cbr(in_ch, ch, 3, 2), _cbr(ch, ch, 3, 2))
        self.context = nn.Sequential(_cbr(in_ch, ch, 3, 2), _cbr(ch, ch, 3, 2), _cbr(ch, ch, 3, 2))
        self.attn = TaylorAttention(ch)
        self.fuse = _cbr(2 * ch, ch, 1)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(ch, ch // 4, 1), nn.ReLU(),
                                nn.Conv2d(ch // 4, ch, 1), nn.Sigmoid())
        self.dropout = nn.Dropout2d(0.1)
        self.head = nn.Conv2d(ch, num_classes, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        sp = self.spatial(x)
        cx = self.attn(self.context(x))
        cx = F.interpolate(cx, size=sp.shape[-2:], mode="bilinear", align_corners=False)
        f = self.fuse(torch.cat([sp, cx], 1))
        f = f + f * self.se(f)
        out = self.head(self.dropout(f))
        return F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)


def _interp_cases():
    out = {}
    for mode, acs in (("nearest", (None,)), ("nearest-exact", (None,)), ("bilinear", (False, True)),
                      ("area", (None,))):
        for ac in acs:
            for by_scale in (False, True):
                tag = f"interp_{mode}{'_ac' if ac else ''}{'_scale' if by_scale else '_size'}"
                out[tag] = ((lambda m=mode, a=ac, s=by_scale: Interp(m, a, by_scale=s)), (1, 3, 12, 10))
    return out


CORPUS = {
    "einsum_taylor": (lambda: TaylorAttention(8), (1, 8, 8, 8)),
    "einsum_heads": (EinsumHeads, (1, 8, 16, 16)),
    "einsum_mix": (EinsumMix, (2, 6, 8, 8)),
    **_interp_cases(),
    "psp_head": (PSPHead, (1, 4, 20, 20)),
    "adaptive_pools": (AdaptivePools, (1, 3, 17, 23)),
    "mha": (MHABlock, (1, 8, 8, 8)),
    "mha_seq_first": (MHASeqFirst, (1, 8, 6, 6)),
    "sdpa": (SDPABlock, (1, 8, 8, 8)),
    "norms": (Norms, (1, 8, 8, 8)),
    "grid_sample": (FlowWarp, (1, 4, 12, 12)),
    "grid_sample_border_ac": (lambda: FlowWarp(mode="bilinear", padding_mode="border", align_corners=True),
                              (1, 4, 12, 12)),
    "grid_sample_nearest": (lambda: FlowWarp(mode="nearest"), (1, 4, 12, 12)),
    "window_attention_pad": (WindowAttention, (1, 8, 10, 12)),
    "window_attention_even": (lambda: WindowAttention(ws=4), (1, 8, 16, 16)),
    "dynamic_reshape": (DynamicReshape, (2, 4, 8, 8)),
    "bilateral": (BilateralNet, (1, 3, 32, 32)),
    "interp_bicubic": (lambda: Interp("bicubic", False), (1, 3, 12, 10)),
    "interp_bicubic_ac_scale": (lambda: Interp("bicubic", True, by_scale=True), (1, 3, 12, 10)),
    "interp_bilinear_antialias": (lambda: Interp("bilinear", False, antialias=True), (1, 3, 12, 10)),
    "grid_sample_bicubic": (lambda: FlowWarp(mode="bicubic"), (1, 4, 12, 12)),
}



class ValueBranch(nn.Module):
    """Chooses a path from the data (a Python `if` on a tensor value): torch.export
    cannot trace it, so compile must fall back for this block only."""

    def __init__(self, ch=4):
        super().__init__()
        self.a = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        if x.mean() > 0:
            return self.a(x)
        return x - 1


class PartlyTraceable(nn.Module):
    """A net with one untraceable block among traceable ones."""

    def __init__(self, ch=4):
        super().__init__()
        self.stem = _cbr(3, ch)
        self.branch = ValueBranch(ch)
        self.body = nn.Sequential(_cbr(ch, ch), TaylorAttention(ch))
        self.head = nn.Conv2d(ch, 2, 1)

    def forward(self, x):
        return self.head(self.body(self.branch(self.stem(x))))


class Grown(nn.Module):
    """Resizes to twice the input in a mode given at construction (dynamic-size cases)."""

    def __init__(self, mode="bicubic", antialias=False, pool=None):
        super().__init__()
        self.mode, self.aa, self.pool = mode, antialias, pool
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = self.conv(x)
        if self.pool is not None:
            return F.adaptive_avg_pool2d(y, self.pool)
        return F.interpolate(y, scale_factor=0.5, mode=self.mode, antialias=self.aa)


class MaxIndices(nn.Module):
    def forward(self, x):
        y, idx = F.adaptive_max_pool2d(x, 3, return_indices=True)
        return y + idx.float()


class SizeGate(nn.Module):
    """Doubles its output above a width: right at the traced size, wrong at a larger one
    once exported with a dynamic width unless the guard is checked."""

    size_multiple = 32

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = self.conv(x)
        if x.shape[-1] > 64:
            return y * 2
        return y
