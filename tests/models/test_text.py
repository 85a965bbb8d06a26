"""Tests for distill.models.text: shapes, options, vmap, the exact back-gradient, and training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from distill.errors import UserError
from distill.functional import FunctionalNet, classification_loss
from distill.inits import SCHEMES, init_weights
from distill.seeds import generator
from distill.models import build_model, model_options
from distill.unroll import hypergradient, train

NAMES = ["textcnn", "textlstm"]
SMALL = {"textcnn": {"widths": [2, 3], "maps": 3}, "textlstm": {"hidden": 4, "layers": 2}}
CLASSES = 3


@pytest.mark.parametrize("input_shape", [(1, 12, 8), (1, 30, 50)], ids=["12x8", "30x50"])
@pytest.mark.parametrize("name", NAMES)
def test_logits_shape_and_no_buffers(name, input_shape):
    model = build_model(name, input_shape, CLASSES)
    assert model(torch.randn(5, *input_shape)).shape == (5, CLASSES)
    assert list(model.buffers()) == []


def test_options_and_parameter_layout():
    assert model_options("textcnn") == {"widths": (3, 4, 5), "maps": 100}
    assert model_options("textlstm") == {"hidden": 100, "layers": 1}
    cnn = build_model("textcnn", (1, 30, 50), 2, widths=[2, 3], maps=7)
    assert [conv.weight.shape for conv in cnn.convs] == [(7, 1, 2, 50), (7, 1, 3, 50)]
    assert cnn.classifier.in_features == 14
    lstm = build_model("textlstm", (1, 30, 50), 2, hidden=6, layers=2)
    shapes = {name: tuple(p.shape) for name, p in lstm.named_parameters()}
    assert shapes["weight_ih_l0"] == shapes["weight_ih_l0_reverse"] == (24, 50)
    assert shapes["weight_ih_l1"] == (24, 12)
    assert shapes["weight_hh_l1_reverse"] == (24, 6)
    assert shapes["bias_l1"] == (24,)
    assert shapes["classifier.weight"] == (2, 12)


def test_textcnn_equals_its_convolutions_with_max_over_time_pooling():
    torch.manual_seed(0)
    model = build_model("textcnn", (1, 9, 6), CLASSES, widths=[1, 3, 9], maps=4).double()
    x = torch.randn(5, 1, 9, 6, dtype=torch.float64)
    pooled = [F.relu(conv(x)).amax(dim=(2, 3)) for conv in model.convs]
    torch.testing.assert_close(model(x), model.classifier(torch.cat(pooled, dim=1)))


@pytest.mark.parametrize("layers", [1, 2])
def test_textlstm_equals_torch_bidirectional_lstm(layers):
    torch.manual_seed(0)
    model = build_model("textlstm", (1, 7, 5), CLASSES, hidden=4, layers=layers).double()
    reference = nn.LSTM(5, 4, num_layers=layers, bidirectional=True, batch_first=True).double()
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if name.startswith("bias_hh"):
                p.zero_()
            else:
                p.copy_(getattr(model, name.replace("bias_ih", "bias")))
    x = torch.randn(6, 1, 7, 5, dtype=torch.float64)
    _, (h_n, _) = reference(x.squeeze(1))
    expected = model.classifier(torch.cat([h_n[-2], h_n[-1]], dim=1))
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_stacked_parameters_matches_separate_models(name):
    torch.manual_seed(0)
    models = [build_model(name, (1, 12, 8), CLASSES, **SMALL[name]).double() for _ in range(3)]
    params, _ = stack_module_state(models)
    x = torch.randn(5, 1, 12, 8, dtype=torch.float64)
    batched = vmap(lambda p: functional_call(models[0], p, (x,)))(params)
    torch.testing.assert_close(batched, torch.stack([model(x) for model in models]))


def reference_gradients(net, theta0, x, labels, lrs, real_x, real_y):
    """L and dL/d(x, lrs) by plain autograd through all T steps, one network at a time, no vmap."""
    x, lrs = x.clone().requires_grad_(), lrs.clone().requires_grad_()
    total = 0.0
    for theta in theta0:
        theta = theta.clone().requires_grad_()
        for t in range(len(lrs)):
            s = t % x.shape[0]
            (g,) = torch.autograd.grad(net.loss(theta, x[s], labels[s]), theta, create_graph=True)
            theta = theta - lrs[t] * g
        total = total + net.loss(theta, real_x, real_y)
    outer = total / len(theta0)
    return outer.detach(), torch.autograd.grad(outer, [x, lrs])


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("mode", ["stored", "recompute"])
@pytest.mark.parametrize("name", NAMES)
def test_backgradient_equals_autograd_through_unroll(name, mode):
    torch.manual_seed(0)
    shape, steps, per_step = (1, 6, 5), 2, 3
    net = FunctionalNet.of(build_model(name, shape, CLASSES, **SMALL[name]).double())
    theta0 = 0.3 * torch.randn(2, net.num_params, dtype=torch.float64)
    x = torch.randn(steps, per_step, *shape, dtype=torch.float64)
    labels = torch.randint(CLASSES, (steps, per_step))
    lrs = 0.05 + 0.1 * torch.rand(2 * steps, dtype=torch.float64)
    real_x, real_y = torch.randn(8, *shape, dtype=torch.float64), torch.randint(CLASSES, (8,))

    ours = hypergradient(net, theta0, x, labels, lrs, real_x, real_y, mode=mode)
    loss, (d_x, d_lrs) = reference_gradients(net, theta0, x, labels, lrs, real_x, real_y)

    assert torch.allclose(ours.loss, loss, rtol=1e-12)
    assert relative_error(ours.x, d_x) < 1e-6
    assert relative_error(ours.lrs, d_lrs) < 1e-6


def keyword_sentences(n: int, shape: tuple[int, int, int], gen: torch.Generator):
    """Noise sentences, each with its class's keyword vector at a random position: separable."""
    _, length, embed_dim = shape
    keywords = 2.0 * torch.randn(CLASSES, embed_dim, generator=gen)
    y = torch.arange(n) % CLASSES
    x = 0.3 * torch.randn(n, 1, length, embed_dim, generator=gen)
    x[torch.arange(n), 0, torch.randint(length, (n,), generator=gen)] += keywords[y]
    return x, y


@pytest.mark.parametrize(("name", "options"), [("textcnn", SMALL["textcnn"]), ("textlstm", {"hidden": 8})])
def test_gradient_descent_from_xavier_init_reduces_the_loss(name, options):
    shape = (1, 6, 6)
    net = FunctionalNet.of(build_model(name, shape, CLASSES, **options))
    theta0 = torch.stack([init_weights(net, "xavier", 1.0, generator(0, k)) for k in range(2)])
    assert torch.isfinite(theta0).all()
    x, y = keyword_sentences(30, shape, torch.Generator().manual_seed(0))
    theta = train(net, theta0, x[None], y[None], torch.full((20,), 1.0))

    def mean_loss(thetas):
        return torch.stack([classification_loss(net.logits(t, x), y) for t in thetas]).mean()

    assert mean_loss(theta) < 0.5 * mean_loss(theta0)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name", NAMES)
def test_every_init_scheme_gives_finite_weights(name, scheme):
    net = FunctionalNet.of(build_model(name, (1, 12, 8), CLASSES, **SMALL[name]))
    theta = init_weights(net, scheme, 1.0, generator(0))
    assert theta.shape == (net.num_params,) and torch.isfinite(theta).all()
    if scheme != "default":
        assert all((p == 0).all() for p in net.unflatten(theta).values() if p.ndim == 1)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("textcnn", {"width": [3]}, r"unknown textcnn option 'width' \(did you mean 'widths'\?\)"),
        ("textlstm", {"hiden": 10}, r"unknown textlstm option 'hiden' \(did you mean 'hidden'\?\)"),
        ("textcnn", {"widths": 3}, "list of positive integers"),
        ("textcnn", {"widths": []}, "list of positive integers"),
        ("textcnn", {"widths": [3, 0]}, "list of positive integers"),
        ("textcnn", {"maps": 0}, "'maps' must be a positive integer"),
        ("textcnn", {"widths": [3, 13]}, r"width 13 is longer than the sentences \(max_len 12\)"),
        ("textlstm", {"hidden": 0}, "positive integers"),
        ("textlstm", {"layers": True}, "positive integers"),
    ],
)
def test_bad_options_are_user_errors(name, options, message):
    with pytest.raises(UserError, match=message):
        build_model(name, (1, 12, 8), CLASSES, **options)


@pytest.mark.parametrize("name", NAMES)
def test_images_with_several_channels_are_user_errors(name):
    with pytest.raises(UserError, match=r"embedded sentences of shape \(1, max_len, embed_dim\); got 3 channels"):
        build_model(name, (3, 32, 32), CLASSES)
