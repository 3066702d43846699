"""MANet (Li et al., "Multiattention network for semantic segmentation of fine-resolution
remote sensing images", IEEE TGRS 2022), as GeoSeg builds it.

A ResNet encoder (timm features_only names under `backbone.`), a position + channel
attention pair (GeoSeg's PAM_CAM_Layer) on every encoder level, LinkNet-style decoder blocks
(1x1 reduce, stride-2 transposed 3x3, 1x1 expand) and a transposed-conv head. Parameter
names and shapes are GeoSeg's, so its checkpoints load strictly.

PAM is the kernel attention with softplus features (effseg.nn.LinearAttention.manet_pam,
the fast linear_attention op); CAM is DANet's channel attention, a C x C softmax over
channel similarities, left in plain PyTorch (matmuls that BLAS already does well).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn import LinearAttention
from ..ops import _validate as V
from ..ops.linear_attention import BACKENDS
from .backbones import ResNet
from .base import SegmentationModel
from .registry import register

BACKBONES = {"resnet18": 18, "resnet34": 34, "resnet50": 50}


class ChannelAttention(nn.Module):
    """Channel attention (Fu et al., DANet, CVPR 2019): out = x + gamma * softmax(E') x,
    E = x x^T over the H*W positions and E' = rowmax(E) - E, so that channels that are
    least alike weigh most (DANet's choice; softmax is shift-invariant, so this equals
    softmax(-E))."""

    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q = x.reshape(b, c, h * w)
        energy = torch.bmm(q, q.transpose(1, 2))
        energy = energy.amax(-1, keepdim=True) - energy
        out = torch.bmm(torch.softmax(energy, -1), q).reshape(b, c, h, w)
        return self.gamma * out + x


class PAMCAMLayer(nn.Module):
    """PAM(x) + CAM(x); both start as the identity (gamma = 0), so the sum starts as 2x."""

    def __init__(self, in_ch: int, backend: str = "auto"):
        super().__init__()
        self.PAM = LinearAttention.manet_pam(in_ch, backend=backend)
        self.CAM = ChannelAttention()

    def forward(self, x: Tensor) -> Tensor:
        return self.PAM(x) + self.CAM(x)


class DecoderBlock(nn.Module):
    """LinkNet decoder block: 1x1 to C/4, transposed 3x3 stride 2 (x2 upsampling),
    1x1 to n_filters, each followed by BN and ReLU."""

    def __init__(self, in_channels: int, n_filters: int):
        super().__init__()
        mid = in_channels // 4
        self.conv1 = nn.Conv2d(in_channels, mid, 1)
        self.norm1 = nn.BatchNorm2d(mid)
        self.deconv2 = nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1)
        self.norm2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, n_filters, 1)
        self.norm3 = nn.BatchNorm2d(n_filters)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        x = F.relu(self.norm2(self.deconv2(x)))
        return F.relu(self.norm3(self.conv3(x)))


class MANet(SegmentationModel):
    """MANet: (B, in_channels, H, W) -> (B, num_classes, H, W) logits.

    backbone: "resnet50" (GeoSeg's default), "resnet18" or "resnet34" (timm names).
    backend: the linear_attention backend of every PAM ("ref" for the readable reference).
    The original has no auxiliary outputs, so training mode returns the logits alone.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, backbone: str = "resnet50",
                 backend: str = "auto"):
        super().__init__(in_channels, num_classes)
        V.choice("backbone", backbone, tuple(BACKBONES))
        V.choice("backend", backend, BACKENDS)
        self.backbone = ResNet(BACKBONES[backbone], in_channels, out_indices=(1, 2, 3, 4))
        f = self.backbone.channels
        self.attention4 = PAMCAMLayer(f[3], backend)
        self.attention3 = PAMCAMLayer(f[2], backend)
        self.attention2 = PAMCAMLayer(f[1], backend)
        self.attention1 = PAMCAMLayer(f[0], backend)
        self.decoder4 = DecoderBlock(f[3], f[2])
        self.decoder3 = DecoderBlock(f[2], f[1])
        self.decoder2 = DecoderBlock(f[1], f[0])
        self.decoder1 = DecoderBlock(f[0], f[0])
        self.finaldeconv1 = nn.ConvTranspose2d(f[0], 32, 4, 2, 1)
        self.finalconv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.finalconv3 = nn.Conv2d(32, num_classes, 3, padding=1)

    def forward_logits(self, x: Tensor) -> Tensor:
        e1, e2, e3, e4 = self.backbone(x)
        d4 = self.decoder4(self.attention4(e4)) + self.attention3(e3)
        d3 = self.decoder3(d4) + self.attention2(e2)
        d2 = self.decoder2(d3) + self.attention1(e1)
        d1 = self.decoder1(d2)
        out = F.relu(self.finaldeconv1(d1))
        out = F.relu(self.finalconv2(out))
        return self.finalconv3(out)


@register("manet", params_m=35.86,
          paper="Li et al., Multiattention network for semantic segmentation "
                "of fine-resolution remote sensing images, IEEE TGRS 2022",
          summary="ResNet-50 encoder, softplus kernel attention + channel attention on "
                  "every level, LinkNet decoder",
          checkpoint="GeoSeg (WangLibo1995/GeoSeg)")
def manet(num_classes: int, **options) -> MANet:
    return MANet(num_classes, **options)
