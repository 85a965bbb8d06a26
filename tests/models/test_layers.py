"""Layers of the models (distill.models.layers): GroupNorm2d."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap


def test_group_norm_equals_torch_and_its_double_backward_is_exact():
    """GroupNorm2d against F.group_norm, its second derivative against finite differences in float64,
    and under vmap without autograd."""
    from distill.models.layers import GroupNorm2d

    torch.manual_seed(0)
    norm = GroupNorm2d(4, 8).double()
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, dtype=torch.float64, requires_grad=True)
    as_function = lambda x, w, b: functional_call(norm, {"weight": w, "bias": b}, (x,))  # noqa: E731
    torch.testing.assert_close(as_function(x, w, b), F.group_norm(x, 4, w, b))
    assert torch.autograd.gradgradcheck(as_function, (x, w, b))
    with torch.no_grad():
        batched = vmap(as_function, in_dims=(None, 0, 0))(x, w.detach()[None].repeat(3, 1), b.detach()[None].repeat(3, 1))
    torch.testing.assert_close(batched[1], F.group_norm(x, 4, w, b).detach())
