"""ResT encoder (Zhang & Yang, "ResT: An Efficient Transformer for Visual Recognition",
NeurIPS 2021), as BANet uses it.

Four stages at strides 4, 8, 16, 32. Each block is pre-norm multi-head self-attention
whose keys/values come from a depthwise strided conv ("spatial reduction", sr_ratio) and
a LayerNorm, then an MLP. With apply_transform (ResT's "EMSA"), a 1x1 conv mixes the heads'
score maps before the softmax and an InstanceNorm follows it. Positions are encoded by
pixel attention (x * sigmoid(dwconv3x3(x))) after the stem and each patch embedding.

Parameter names follow the ResT code GeoSeg vendors (stem.conv1, patch_embed_2.pos.pa_conv,
stage1.0.attn.kv, norm, ...), so BANet checkpoints load as they are.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training, zero a sample's residual branch
    with probability p and scale the kept ones by 1/(1-p); identity in eval."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype,
                           device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Softmax attention over N = H*W tokens against (H/sr)*(W/sr) reduced keys/values."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False, sr_ratio: int = 1,
                 apply_transform: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio + 1, stride=sr_ratio,
                                padding=sr_ratio // 2, groups=dim)
            self.sr_norm = nn.LayerNorm(dim)
        # Mixing heads needs more than one head (ResT's rule).
        self.apply_transform = apply_transform and num_heads > 1
        if self.apply_transform:
            self.transform_conv = nn.Conv2d(num_heads, num_heads, kernel_size=1)
            self.transform_norm = nn.InstanceNorm2d(num_heads)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        heads = self.num_heads
        q = self.q(x).reshape(b, n, heads, c // heads).transpose(1, 2)
        kv_in = x
        if self.sr_ratio > 1:
            kv_in = self.sr(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
            kv_in = self.sr_norm(kv_in)
        kv = self.kv(kv_in).reshape(b, -1, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if self.apply_transform:
            attn = _instance_norm(self.transform_conv(attn).softmax(dim=-1), self.transform_norm.eps)
        else:
            attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


def _instance_norm(x: Tensor, eps: float) -> Tensor:
    """nn.InstanceNorm2d (no affine, no running stats) with means taken row by row, then
    over the rows.

    The softmax maps it normalises hold up to 16384 x 256 values per head at 512^2 whose
    spread (variance ~1e-14) is far below eps, so the output is (x - mean) / sqrt(eps):
    any error in the mean is multiplied by ~316. A single-pass fp32 sum over 4M values
    (ONNX Runtime's InstanceNormalization) put BANet's logits 3e-2 (relative) away from
    PyTorch's; two short reductions keep the mean, and the result, to fp32 rounding in
    every runtime.

    With near-uniform maps (fresh weights) fp32 p = 1/M + d has lost most of d itself
    before any mean is taken, and OpenVINO's softmax rounding put BANet's logits 3e-2
    (relative) off PyTorch's. Computing d from the scores (expm1 of the max-shifted
    scores, over sum exp) brought that to 1.5e-6, but cost BANet 512^2 +20 % in
    OpenVINO, +18 % in ONNX Runtime and +8 % eager (2-core Xeon, both forms side by side
    in one process): not kept, since only near-uniform attention needs it.
    """
    mean = x.mean(dim=-1, keepdim=True).mean(dim=-2, keepdim=True)
    d = x - mean
    var = (d * d).mean(dim=-1, keepdim=True).mean(dim=-2, keepdim=True)
    return d * torch.rsqrt(var + eps)


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool,
                 sr_ratio: int, apply_transform: bool, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias, sr_ratio, apply_transform)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PA(nn.Module):
    """Pixel attention: x * sigmoid(depthwise 3x3(x))."""

    def __init__(self, dim: int):
        super().__init__()
        self.pa_conv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.pa_conv(x))


class PatchEmbed(nn.Module):
    """Stride-2 3x3 conv + BN + pixel attention between stages."""

    def __init__(self, in_ch: int, out_ch: int, patch_size: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=patch_size + 1, stride=patch_size,
                              padding=patch_size // 2)
        self.norm = nn.BatchNorm2d(out_ch)
        self.pos = PA(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.pos(self.norm(self.conv(x)))


class BasicStem(nn.Module):
    """conv3x3/2 + BN + ReLU, conv3x3 + BN + ReLU, conv3x3/2, pixel attention: stride 4."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        hidden = out_ch // 2
        self.conv1 = nn.Conv2d(in_ch, hidden, 3, stride=2, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, stride=1, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(hidden)
        self.conv3 = nn.Conv2d(hidden, out_ch, 3, stride=2, padding=1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.pos = PA(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.norm1(self.conv1(x)))
        x = self.act(self.norm2(self.conv2(x)))
        return self.pos(self.conv3(x))


def _four(name: str, v, integer: bool = True) -> tuple:
    kinds = int if integer else (int, float)
    v = tuple(v) if isinstance(v, Sequence) else v
    if not isinstance(v, tuple) or len(v) != 4 or not all(
            isinstance(e, kinds) and not isinstance(e, bool) and e > 0 for e in v):
        what = "ints" if integer else "numbers"
        raise ValueError(f"{name} must be 4 positive {what} (one per stage), got {v!r}")
    return v


class ResT(nn.Module):
    """ResT encoder returning the stage outputs listed in out_indices (0..3 = strides
    4, 8, 16, 32; (B, C, H, W) maps). The final LayerNorm (`norm`) applies to stage 3, as
    in ResT and BANet; earlier stages are returned without it.

    No classification head: GeoSeg's BANet copy has none either.
    """

    def __init__(self, in_channels: int = 3, embed_dims=(64, 128, 256, 512),
                 num_heads=(1, 2, 4, 8), mlp_ratios=(4, 4, 4, 4), qkv_bias: bool = False,
                 depths=(2, 2, 2, 2), sr_ratios=(8, 4, 2, 1), apply_transform: bool = False,
                 drop_path_rate: float = 0.0, out_indices: tuple[int, ...] = (2, 3)):
        super().__init__()
        embed_dims = _four("embed_dims", embed_dims)
        num_heads = _four("num_heads", num_heads)
        mlp_ratios = _four("mlp_ratios", mlp_ratios, integer=False)
        depths = _four("depths", depths)
        sr_ratios = _four("sr_ratios", sr_ratios)
        if any(d % h for d, h in zip(embed_dims, num_heads)):
            raise ValueError(f"embed_dims must be divisible by num_heads, got {embed_dims} "
                             f"and {num_heads}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}")
        if not out_indices or any(i not in range(4) for i in out_indices):
            raise ValueError(f"out_indices must be a non-empty subset of 0..3, got "
                             f"{out_indices!r}")
        self.out_indices = tuple(out_indices)
        self.embed_dims = embed_dims
        self.stem = BasicStem(in_channels, embed_dims[0])
        for i in range(1, 4):
            setattr(self, f"patch_embed_{i + 1}", PatchEmbed(embed_dims[i - 1], embed_dims[i]))
        # Stochastic depth grows linearly over all blocks (ResT's schedule).
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        cur = 0
        for i in range(4):
            setattr(self, f"stage{i + 1}", nn.ModuleList(
                Block(embed_dims[i], num_heads[i], mlp_ratios[i], qkv_bias, sr_ratios[i],
                      apply_transform, dpr[cur + j]) for j in range(depths[i])))
            cur += depths[i]
        self.norm = nn.LayerNorm(embed_dims[3])
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            # ResT zeroes Linear biases only; conv biases keep PyTorch's default init.
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(self.embed_dims[i] for i in self.out_indices)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        x = self.stem(x)
        last = max(self.out_indices)
        for i in range(last + 1):
            if i > 0:
                x = getattr(self, f"patch_embed_{i + 1}")(x)
            b, c, h, w = x.shape
            t = x.flatten(2).transpose(1, 2)
            for blk in getattr(self, f"stage{i + 1}"):
                t = blk(t, h, w)
            if i == 3:
                t = self.norm(t)
            x = t.transpose(1, 2).reshape(b, c, h, w)
            if i in self.out_indices:
                feats.append(x)
        return feats


def rest_lite(in_channels: int = 3, out_indices=(2, 3), **kw) -> ResT:
    """ResT-Lite as BANet configures it (qkv bias, head-mixing transform)."""
    return ResT(in_channels, embed_dims=(64, 128, 256, 512), num_heads=(1, 2, 4, 8),
                mlp_ratios=(4, 4, 4, 4), qkv_bias=True, depths=(2, 2, 2, 2),
                sr_ratios=(8, 4, 2, 1), apply_transform=True, out_indices=out_indices, **kw)
