import math

import torch

from distill.functional import FunctionalNet, classification_loss
from distill.models import build_model


def test_flatten_unflatten_round_trip_and_views():
    module = build_model("lenet", (1, 8, 8), 10)
    net = FunctionalNet.of(module)
    theta = net.flatten(dict(module.named_parameters()))
    assert theta.shape == (net.num_params,) == (sum(p.numel() for p in module.parameters()),)
    params = net.unflatten(theta)
    assert all(torch.equal(params[n], p) for n, p in module.named_parameters())
    assert params["conv1.weight"].data_ptr() == theta.data_ptr()


def test_logits_equal_the_module_called_directly():
    module = build_model("mlp", (1, 4, 4), 3, hidden=[6])
    net = FunctionalNet.of(module)
    x = torch.randn(5, 1, 4, 4)
    assert torch.allclose(net.logits(net.flatten(dict(module.named_parameters())), x), module(x))


def test_soft_label_loss_is_the_finite_sum():
    logits = torch.tensor([[1.0, 2.0, -1.0], [0.5, 0.0, 0.0]])
    labels = torch.tensor([[2.34, -0.33, 0.1], [0.0, 1.0, 0.0]])
    expected = 0.0
    for z, y in zip(logits.tolist(), labels.tolist()):
        log_norm = math.log(sum(math.exp(v) for v in z))
        expected -= sum(yc * (zc - log_norm) for yc, zc in zip(y, z))
    assert math.isclose(classification_loss(logits, labels).item(), expected / 2, rel_tol=1e-6)


def test_hard_labels_equal_one_hot_soft_labels():
    logits = torch.randn(7, 4)
    labels = torch.randint(4, (7,))
    one_hot = torch.nn.functional.one_hot(labels, 4).float()
    assert torch.allclose(classification_loss(logits, labels), classification_loss(logits, one_hot))
