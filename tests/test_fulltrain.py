"""Full-data training: the functional Adam loop against an ordinary nn.Module + torch.optim loop."""

import torch
import torch.nn.functional as F

from distill.fulltrain import train_full
from distill.functional import FunctionalNet
from distill.models import build_model


def test_train_full_matches_module_training_with_the_same_batches():
    torch.manual_seed(0)
    module = build_model("mlp", (1, 3, 3), 3, hidden=[7]).double()
    net = FunctionalNet.of(module)
    x, y = torch.randn(50, 1, 3, 3, dtype=torch.float64), torch.randint(3, (50,))
    theta0 = torch.nn.utils.parameters_to_vector(module.parameters()).detach().clone()
    theta, losses = train_full(net, theta0, x, y, epochs=2, lr=0.01, batch_size=16, gen=torch.Generator().manual_seed(5))
    assert losses.shape == (2,) and torch.isfinite(losses).all()

    optimizer = torch.optim.Adam(module.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(5)
    for _ in range(2):
        order = torch.randperm(50, generator=gen)
        for start in range(0, 50, 16):
            rows = order[start : start + 16]
            optimizer.zero_grad()
            F.cross_entropy(module(x[rows]), y[rows]).backward()
            optimizer.step()
    expected = torch.nn.utils.parameters_to_vector(module.parameters()).detach()
    assert torch.allclose(theta, expected, atol=1e-10)
    assert not torch.allclose(theta, theta0)
