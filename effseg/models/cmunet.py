"""CM-UNet: a ResNet-18 encoder, a decoder of VMamba SS2D blocks gated by channel and
spatial attention, and multi-scale attention aggregation (MSAA) of the skip features.

Liu et al., "CM-UNet: Hybrid CNN-Mamba UNet for Remote Sensing Image Semantic
Segmentation", 2024. Parameter names are those of the authors' code (XiaoBuL/CM-UNet,
`MambaUnet` wrapping `VSSM` of mamba_sys.py as `mamba_unet`), so its checkpoints load:

    r1..r4  = backbone(x)                        strides 4, 8, 16, 32
    s1..s3  = MSAA(r_i, r_j resized, r_k resized) every skip sees all three scales
    x       = VSSLayer(r4) -> PatchExpand        decoder stage at stride 32
    x       = VSSLayer_up(Linear(cat(x, s_i)))   stages at strides 16, 8, 4
    logits  = upsample(output(norm_up(x)))
    training: (logits, aux_s4, aux_s4, aux_s8)  1x1 heads on the last three stages

Each VSSBlock is  x + up(t + SS2D'(ln_1(t))), t = down(x)  (down/up halve and restore
the width), and SS2D' is VMamba's SS2D whose gate z is first re-weighted by CBAM-style
channel and spatial attention: y = out_norm(scan(x)) * silu(SA(CA(z) z) CA(z) z). (The paper calls this
block CSMamba; the code, and so the checkpoint, calls it VSSBlock / SS2D.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.ss2d import SS2D
from ..ops import _validate as V
from ..ops.selective_scan import BACKENDS as SCAN_BACKENDS
from .backbones.resnet import ResNet
from .backbones.resnet_thin import ThinResNet18
from .backbones.rest import DropPath
from .base import SegmentationModel
from .registry import register

PAPER = ("Liu et al., CM-UNet: Hybrid CNN-Mamba UNet for Remote Sensing Image Semantic "
         "Segmentation, arXiv 2024")


class ChannelAttentionModule(nn.Module):
    """sigmoid(fc(avgpool x) + fc(maxpool x)), fc = 1x1 conv to C/4, ReLU, 1x1 conv to C."""

    def __init__(self, in_channels: int, reduction: int = 4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Sequential(
            nn.Conv2d(in_channels, in_channels // reduction, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels // reduction, in_channels, 1, bias=False))
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return self.sigmoid(self.fc(self.avg_pool(x)) + self.fc(self.max_pool(x)))


class SpatialAttentionModule(nn.Module):
    """sigmoid(conv7x7([mean over C, max over C]))."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        s = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return self.sigmoid(self.conv1(s))


class GatedSS2D(SS2D):
    """SS2D (VMamba names) with CM-UNet's attention on the gate branch z."""

    def __init__(self, d_model: int, **kw):
        super().__init__(d_model, **kw)
        # Registered before out_norm / out_proj, as in the original: parameters() then has
        # its order, which optimizer state in a training checkpoint is indexed by.
        tail = {n: self._modules.pop(n) for n in ("out_norm", "out_proj", "dropout")}
        self.channel_attention = ChannelAttentionModule(self.d_inner)
        self.spatial_attention = SpatialAttentionModule()
        for name, module in tail.items():
            self.add_module(name, module)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[-1] != self.d_model:
            raise ValueError(f"GatedSS2D input must be (B, H, W, C={self.d_model}) "
                             f"channels-last, got {tuple(x.shape)}")
        b, h, w, _ = x.shape
        x, z = self.in_proj(x).chunk(2, dim=-1)
        z = z.permute(0, 3, 1, 2)
        z = self.channel_attention(z) * z
        z = (self.spatial_attention(z) * z).permute(0, 2, 3, 1)
        x = self.act(self.conv2d(x.permute(0, 3, 1, 2).contiguous()))
        y = self.forward_core(x).to(x.dtype).transpose(1, 2).reshape(b, h, w, self.d_inner)
        y = self.out_norm(y) * F.silu(z)
        return self.dropout(self.out_proj(y))


class VSSBlock(nn.Module):
    def __init__(self, hidden_dim: int, drop_path: float = 0.0, attn_drop_rate: float = 0.0,
                 d_state: int = 16, backend: str = "auto"):
        super().__init__()
        d_model = hidden_dim // 2
        self.down = nn.Linear(hidden_dim, d_model)
        self.up = nn.Linear(d_model, hidden_dim)
        self.ln_1 = nn.LayerNorm(d_model)
        self.self_attention = GatedSS2D(d_model, d_state=d_state, d_conv=3, expand=0.5,
                                        dropout=attn_drop_rate, backend=backend)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        t = self.down(x)
        t = t + self.drop_path(self.self_attention(self.ln_1(t)))
        return self.up(t) + x


class PatchExpand(nn.Module):
    """2x upsampling, channels-last: PixelShuffle (C -> C/4), 1x1 conv to C/2, LayerNorm."""

    def __init__(self, dim: int):
        super().__init__()
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.adjust_channels = nn.Conv2d(dim // 4, dim // 2, 1, bias=False)
        self.norm = nn.LayerNorm(dim // 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.adjust_channels(self.pixel_shuffle(x.permute(0, 3, 1, 2)))
        return self.norm(x.permute(0, 2, 3, 1))


class VSSLayer(nn.Module):
    """`depth` VSSBlocks, then PatchExpand when upsample (channels-last throughout)."""

    def __init__(self, dim: int, depth: int, drop_path, upsample: bool, d_state: int = 16,
                 attn_drop: float = 0.0, backend: str = "auto"):
        super().__init__()
        self.blocks = nn.ModuleList(
            VSSBlock(dim, drop_path[i], attn_drop, d_state, backend) for i in range(depth))
        self.upsample = PatchExpand(dim) if upsample else None

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x if self.upsample is None else self.upsample(x)


class FinalPatchExpandX4(nn.Module):
    """Parameters of the original's `up` (FinalPatchExpand_X4), which its forward never
    calls (the logits come from `output` and a bilinear resize); kept so checkpoints load."""

    def __init__(self, dim: int):
        super().__init__()
        self.expand = nn.Linear(dim, 16 * dim, bias=False)
        self.norm = nn.LayerNorm(dim)


class FusionConv(nn.Module):
    """MSAA's fusion: 1x1 down, channel attention branch + (3x3 + 5x5 + 7x7) convs with
    spatial attention, summed, 1x1 up."""

    def __init__(self, in_channels: int, out_channels: int, factor: float = 4.0):
        super().__init__()
        dim = int(out_channels // factor)
        self.down = nn.Conv2d(in_channels, dim, 1)
        self.conv_3x3 = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv_5x5 = nn.Conv2d(dim, dim, 5, padding=2)
        self.conv_7x7 = nn.Conv2d(dim, dim, 7, padding=3)
        self.spatial_attention = SpatialAttentionModule()
        self.channel_attention = ChannelAttentionModule(dim)
        self.up = nn.Conv2d(dim, out_channels, 1)
        # Unused by the original's forward; kept so its checkpoints load strictly.
        self.down_2 = nn.Conv2d(in_channels, dim, 1)

    def forward(self, x1: Tensor, x2: Tensor, x4: Tensor) -> Tensor:
        x = self.down(torch.cat([x1, x2, x4], dim=1))
        xc = x * self.channel_attention(x)
        xs = self.conv_3x3(x) + self.conv_5x5(x) + self.conv_7x7(x)
        xs = xs * self.spatial_attention(xs)
        return self.up(xs + xc)


class MSAA(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.fusion_conv = FusionConv(in_channels, out_channels)

    def forward(self, x1: Tensor, x2: Tensor, x4: Tensor) -> Tensor:
        return self.fusion_conv(x1, x2, x4)


def _resize(x: Tensor, scale: float) -> Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=True)


class CMUNetCore(nn.Module):
    """The original's VSSM (held as `mamba_unet`). width: encoder stage-1 channels, which
    sets every decoder width too (64 = ResNet-18 and the paper's model)."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 64,
                 depths=(2, 2, 2, 2), d_state: int = 16, drop_path_rate: float = 0.2,
                 attn_drop_rate: float = 0.0, backend: str = "auto"):
        super().__init__()
        if width == 64:
            self.backbone = ResNet(18, in_channels, (1, 2, 3, 4))
        else:
            self.backbone = ThinResNet18(width, in_channels, (1, 2, 3, 4))
        dims = [width << i for i in range(4)]
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:k]) for k in range(5)]

        def stage(k: int, upsample: bool) -> VSSLayer:
            return VSSLayer(dims[k], depths[k], dpr[starts[k]:starts[k + 1]], upsample,
                            d_state, attn_drop_rate, backend)

        # Stage i of the decoder works at encoder stage k = 3 - i; the deepest one is a
        # Sequential(layer, PatchExpand) in the original (checkpoint keys layers_up.0.0/.1).
        self.layers_up = nn.ModuleList(
            [nn.Sequential(stage(3, False), PatchExpand(dims[3]))]
            + [stage(3 - i, i < 3) for i in (1, 2, 3)])
        self.concat_back_dim = nn.ModuleList(
            [nn.Identity()] + [nn.Linear(2 * dims[3 - i], dims[3 - i]) for i in (1, 2, 3)])
        # `norm` and `up` are parameters the original holds but never uses in forward.
        self.norm = nn.LayerNorm(dims[3])
        self.norm_up = nn.LayerNorm(dims[0])
        self.up = FinalPatchExpandX4(dims[0])
        self.output = nn.Conv2d(dims[0], num_classes, 1, bias=False)
        self.conv4 = nn.Conv2d(dims[1], num_classes, 1, bias=False)
        self.conv3 = nn.Conv2d(dims[0], num_classes, 1, bias=False)
        self.conv2 = nn.Conv2d(dims[0], num_classes, 1, bias=False)
        hidden = width // 4
        self.AFFs = nn.ModuleList(MSAA(7 * hidden, dims[k]) for k in range(3))
        self.transfer = nn.ModuleList(
            nn.Conv2d(dims[k], hidden << k, 1, bias=False) for k in range(3))
        self.apply(_init_weights)

    def skips(self, feats: list[Tensor]) -> list[Tensor]:
        """MSAA: each of the first three stages fused with the other two resized to it."""
        t0, t1, t2 = (conv(f) for conv, f in zip(self.transfer, feats))
        s0 = self.AFFs[0](t0, _resize(t1, 2.0), _resize(t2, 4.0))
        s1 = self.AFFs[1](t1, _resize(t0, 0.5), _resize(t2, 2.0))
        s2 = self.AFFs[2](t2, _resize(t1, 0.5), _resize(t0, 0.25))
        return [s.permute(0, 2, 3, 1) for s in (s0, s1, s2)]

    def forward(self, x: Tensor):
        h, w = x.shape[-2:]
        feats = self.backbone(x)
        skips = self.skips(feats[:3])
        y = self.layers_up[0](feats[3].permute(0, 2, 3, 1))
        aux = []
        for i, head in ((1, self.conv4), (2, self.conv3), (3, self.conv2)):
            y = self.concat_back_dim[i](torch.cat([y, skips[3 - i]], dim=-1))
            y = self.layers_up[i](y)
            if self.training:
                aux.append(head(y.permute(0, 3, 1, 2)))
        y = self.output(self.norm_up(y).permute(0, 3, 1, 2))
        y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        if self.training:
            return (y, *aux[::-1])
        return y


def _init_weights(m: nn.Module):
    # The original's init: Linear ~ N(0, 0.02) truncated, zero bias; LayerNorm 1 / 0;
    # convolutions keep PyTorch's default init.
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _check_options(width, depths, d_state, drop_path_rate, attn_drop_rate, backend):
    # SS2D only reads its backend at forward time; say what is wrong at construction.
    V.choice("backend", backend, SCAN_BACKENDS)
    if isinstance(width, bool) or not isinstance(width, int) or width < 16 or width % 16:
        raise ValueError(f"width must be a positive multiple of 16 (the narrowest "
                         f"attention is width / 16 channels), got {width!r}")
    if (not isinstance(depths, (tuple, list)) or len(depths) != 4
            or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in depths)):
        raise ValueError(f"depths must be 4 ints >= 1 (VSS blocks per decoder stage, "
                         f"encoder order), got {depths!r}")
    if isinstance(d_state, bool) or not isinstance(d_state, int) or d_state < 1:
        raise ValueError(f"d_state must be an int >= 1, got {d_state!r}")
    for name, v in (("drop_path_rate", drop_path_rate), ("attn_drop_rate", attn_drop_rate)):
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {v!r}")


class CMUNet(SegmentationModel):
    """CM-UNet. Eval returns the logits; training returns (logits, aux_s4_a, aux_s4_b,
    aux_s8): the original's (logits, [h2, h3, h4]) flattened, 1x1-conv logits of the last
    three decoder stages at strides 4, 4 and 8 (not resized; the loss resizes them).

    width: encoder / decoder base width (64: ResNet-18, the paper's model; other values
    use a ResNet-18 scaled to that width). depths: VSS blocks per decoder stage (encoder
    order). d_state: SS2D state size. drop_path_rate: stochastic depth, increasing
    linearly to the deepest stage (0.2 in the authors' config). attn_drop_rate: dropout
    after each SS2D. backend: the selective-scan backend of every SS2D.
    """

    def __init__(self, num_classes: int = 6, in_channels: int = 3, backend: str = "auto",
                 width: int = 64, depths=(2, 2, 2, 2), d_state: int = 16,
                 drop_path_rate: float = 0.2, attn_drop_rate: float = 0.0):
        super().__init__(in_channels, num_classes)
        _check_options(width, depths, d_state, drop_path_rate, attn_drop_rate, backend)
        self.mamba_unet = CMUNetCore(num_classes, in_channels, width, tuple(depths), d_state,
                                     drop_path_rate, attn_drop_rate, backend)

    def forward_logits(self, x: Tensor):
        return self.mamba_unet(x)


class CMUNetTiny(CMUNet):
    """Distillation student of CM-UNet: the same network at half width (a ResNet-18 with
    32..256 channels, every decoder width halved), stage for stage aligned with the
    teacher for feature distillation."""

    def __init__(self, num_classes: int = 6, in_channels: int = 3, backend: str = "auto",
                 width: int = 32, **options):
        super().__init__(num_classes, in_channels, backend, width, **options)


@register("cmunet", params_m=13.10999, paper=PAPER,
          summary="ResNet-18 encoder, SS2D (VMamba) decoder blocks with channel/spatial "
                  "attention gates, multi-scale attention aggregation (MSAA) skips",
          checkpoint="CM-UNet (XiaoBuL/CM-UNet)")
def cmunet(num_classes: int, **options) -> CMUNet:
    return CMUNet(num_classes, **options)


@register("cmunet-tiny", params_m=3.311086, paper=PAPER,
          summary="CM-UNet at half width (ResNet-18 x0.5 encoder, halved decoder): a "
                  "distillation student of cmunet")
def cmunet_tiny(num_classes: int, **options) -> CMUNetTiny:
    return CMUNetTiny(num_classes, **options)
