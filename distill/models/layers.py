"""Layers that stay exact under ``torch.func`` transforms and double backward."""

from __future__ import annotations

import torch
from torch import nn


class BatchStatNorm2d(nn.BatchNorm2d):
    """Batch normalisation on the statistics of the batch it is given, always:

        y = (x − μ_B) / √(σ²_B + ε) · γ + β,   μ_B, σ²_B over (N, H, W) per channel (biased σ²)

    No running averages are kept, so the layer is a pure function of its parameters.
    It is written with elementary ops instead of ``F.batch_norm``: under
    ``torch.func.grad``, the double backward of the fused kernel disagrees with finite
    differences (about 1% relative error in torch 2.13), which would make every
    Hessian-vector product of the inner loop wrong.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__(num_features, eps=eps, affine=True, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = (x - mean).pow(2).mean(dim=(0, 2, 3), keepdim=True)
        scale = self.weight.view(1, -1, 1, 1) * torch.rsqrt(var + self.eps)
        return (x - mean) * scale + self.bias.view(1, -1, 1, 1)


class GroupNorm2d(nn.GroupNorm):
    """Group normalisation written with elementary ops (same numbers as ``nn.GroupNorm``):

        y = (x − μ_g) / √(σ²_g + ε) · γ + β,   μ_g, σ²_g over (channels of group g, H, W) per sample (biased σ²)

    Under ``vmap`` over weight vectors, ``F.group_norm`` fails in torch 2.13 with "NYI:
    querying is_contiguous inside of vmap" when the input batch has channels-last strides
    (e.g. one-channel images whose channel stride is 1, as the digits loader makes them);
    elementary ops work under every transform. ConvNet's instance norm uses it too.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        groups = x.reshape(n, self.num_groups, c // self.num_groups, h, w)
        mean = groups.mean(dim=(2, 3, 4), keepdim=True)
        var = (groups - mean).pow(2).mean(dim=(2, 3, 4), keepdim=True)
        normed = ((groups - mean) * torch.rsqrt(var + self.eps)).reshape(n, c, h, w)
        return normed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
