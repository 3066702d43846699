"""UNetFormer (Wang et al., ISPRS J. 2022) with GeoSeg's parameter names."""
from __future__ import annotations

from torch import Tensor

from ..ops import _validate as V
from .backbones import resnet18, resnet50
from .base import SegmentationModel
from .registry import register
from .unetformer_decoder import Decoder

BACKENDS = ("auto", "ref", "cpp", "triton")
# GeoSeg's default encoder is timm's swsl_resnet18: the ResNet-18 architecture (its
# semi-weakly supervised ImageNet weights come with GeoSeg's checkpoints).
BACKBONES = {"resnet18": resnet18, "resnet50": resnet50}


def check_decoder_options(decode_channels, dropout, window_size) -> None:
    if isinstance(decode_channels, bool) or not isinstance(decode_channels, int) \
            or decode_channels < 16 or decode_channels % 8:
        # 8 attention heads; the refinement head's channel gate squeezes to C // 16.
        raise ValueError(f"decode_channels must be an int >= 16 divisible by 8, got "
                         f"{decode_channels!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
        raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
    if isinstance(window_size, bool) or not isinstance(window_size, int) \
            or window_size < 2 or window_size % 2:
        # The cross-shaped pooling and the ws x ws projection keep H x W only for even ws.
        raise ValueError(f"window_size must be an even int >= 2, got {window_size!r}")


class UNetFormer(SegmentationModel):
    """ResNet encoder (timm features_only names under `backbone.`) + UNetFormer decoder.

    Eval returns logits (B, num_classes, H, W); training returns (logits, aux logits),
    as GeoSeg's UNetFormer (its UnetFormerLoss weights the aux term 0.4).
    decode_channels, dropout (of the segmentation head), window_size: GeoSeg's options.
    backbone: "resnet18" (GeoSeg's swsl_resnet18) or "resnet50".
    backend: accepted for a uniform zoo API; UNetFormer has no effseg op (the window
    attention is plain PyTorch, convolutions stay nn modules for the compile passes).

    Feature maps that are not a multiple of the window size are reflect-padded for the
    attention as in GeoSeg; where GeoSeg's F.pad fails (e.g. 1/32 maps smaller than
    the window, as at 64x64 input) the reflection continues periodically.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, backend: str = "auto", *,
                 decode_channels: int = 64, dropout: float = 0.1, window_size: int = 8,
                 backbone: str = "resnet18"):
        super().__init__(in_channels, num_classes)
        V.choice("backend", backend, BACKENDS)
        V.choice("backbone", backbone, tuple(BACKBONES))
        check_decoder_options(decode_channels, dropout, window_size)
        self.backend = backend
        self.backbone = BACKBONES[backbone](in_channels, out_indices=(1, 2, 3, 4))
        self.decoder = Decoder(self.backbone.channels, decode_channels, float(dropout),
                               window_size, num_classes)

    def forward_logits(self, x: Tensor):
        h, w = x.shape[-2:]
        return self.decoder(*self.backbone(x), h, w)


@register("unetformer", params_m=11.725,
          paper="Wang et al., UNetFormer: A UNet-like transformer for efficient semantic "
                "segmentation of remote sensing urban scene imagery, ISPRS J. 2022",
          summary="ResNet-18 encoder, window-attention Global-Local Transformer decoder "
                  "with a feature refinement head (GeoSeg)",
          checkpoint="GeoSeg (WangLibo1995/GeoSeg)")
def _unetformer(num_classes: int, **options) -> UNetFormer:
    return UNetFormer(num_classes, **options)
