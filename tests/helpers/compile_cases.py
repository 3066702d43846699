"""Small hand-written nets for effseg.compile's tests: the layer patterns of GeoSeg-style
segmentation code (conv+BN+ReLU, depthwise convs, einsum linear attention, control flow)."""
from __future__ import annotations

import torch
from torch import nn


def seeded(module: nn.Module, seed: int = 0) -> nn.Module:
    """Deterministic weights, and BN statistics away from the identity so a fold shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return module.eval()


class ConvBNReLU(nn.Module):
    def __init__(self, cin=3, cout=8, classes=4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                                  nn.ReLU(), nn.Dropout(0.1), nn.Conv2d(cout, classes, 1))

    def forward(self, x):
        return self.body(x)


class Depthwise(nn.Module):
    def __init__(self, c=8, classes=4):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 1)
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.dw5 = nn.Conv2d(c, c, 5, padding=2, groups=c)
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(self.bn(self.dw(x))) + x
        return self.head(self.dw5(x))


def l2_norm(x):
    # Normalise each position's channel vector (dim -2 of b,c,n), as GeoSeg writes it.
    return torch.einsum("bcn,bn->bcn", x, 1 / torch.norm(x, p=2, dim=-2))


class EinsumLinearAttention(nn.Module):
    """Softmax-free linear attention in the einsum form of GeoSeg's ABCNet/MANet
    (Li et al., 2021): Q, K l2-normalised, out = (sum V + Q (K V^T)) / (N + Q . sum K)."""

    def __init__(self, c=8, classes=4, eps=1e-6):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 1)
        self.q = nn.Conv2d(c, c // 2, 1)
        self.k = nn.Conv2d(c, c // 2, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.gamma = nn.Parameter(torch.ones(1))
        self.eps = eps
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        x = self.stem(x)
        b, c, h, w = x.shape
        n = h * w
        q = l2_norm(self.q(x).view(b, -1, n)).permute(0, 2, 1)
        k = l2_norm(self.k(x).view(b, -1, n))
        v = self.v(x).view(b, -1, n)
        tailor = 1 / (n + torch.einsum("bnc,bc->bn", q, torch.sum(k, dim=-1) + self.eps))
        vsum = torch.einsum("bcn->bc", v).unsqueeze(-1).expand(-1, c, n)
        kv = torch.einsum("bmn,bcn->bmc", k, v)
        msum = vsum + torch.einsum("bnm,bmc->bcn", q, kv)
        out = torch.einsum("bcn,bn->bcn", msum, tailor).view(b, c, h, w)
        return self.head(x + self.gamma * out)


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = self.conv(x)
        if y.mean() > 0:  # a branch on a tensor value: torch.export cannot capture it
            return y * 2
        return y - 1


class WithControlFlow(nn.Module):
    """Python control flow on a value, inside a named submodule, plus a shape branch."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 3, 3, padding=1)
        self.gate = DataDependent()

    def forward(self, x):
        x = self.stem(x)
        if x.shape[-1] > 16:  # shape-dependent: fine for export, specialised per shape
            x = x * 0.5
        return self.gate(x)


NETS = {"conv_bn_relu": ConvBNReLU, "depthwise": Depthwise, "einsum_linear_attention": EinsumLinearAttention}
