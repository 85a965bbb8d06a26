"""The model registry (distill.models): every image model's shapes and registry errors, and
stacked models under vmap, differentiated twice; each architecture's own layout is in its test module."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from distill.errors import UserError
from distill.models import MODELS, build_model, model_options

INPUT_SHAPES = [(1, 8, 8), (1, 16, 16), (1, 28, 28), (3, 32, 32)]
SPECS = [
    ("lenet", {}),
    ("alexcifarnet", {}),
    ("convnet", {"norm": "none"}),
    ("convnet", {"norm": "instance"}),
    ("convnet", {"norm": "batch"}),
    ("mlp", {}),
    ("resnet18", {"width": 4, "norm": "group", "groups": 2}),
    ("resnet18", {"width": 4, "norm": "batch"}),
]
SPEC_IDS = [f"{name}-{options.get('norm', '')}".rstrip("-") for name, options in SPECS]
K = 3
NUM_CLASSES = 5
BATCH = 4


def stacked_models(name: str, options: dict, input_shape: tuple[int, int, int]):
    """K independently initialised models, their stacked parameters, and a batch of inputs."""
    torch.manual_seed(0)
    models = [build_model(name, input_shape, NUM_CLASSES, **options).double() for _ in range(K)]
    params, buffers = stack_module_state(models)
    x = torch.randn(BATCH, *input_shape, dtype=torch.float64)
    return models, params, buffers, x


@pytest.mark.parametrize("input_shape", INPUT_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize(("name", "options"), SPECS, ids=SPEC_IDS)
def test_logits_shape(name, options, input_shape):
    model = build_model(name, input_shape, NUM_CLASSES, **options)
    assert model(torch.randn(BATCH, *input_shape)).shape == (BATCH, NUM_CLASSES)


@pytest.mark.parametrize(("name", "options"), SPECS, ids=SPEC_IDS)
def test_models_have_no_buffers(name, options):
    assert list(build_model(name, (3, 32, 32), NUM_CLASSES, **options).buffers()) == []


@pytest.mark.parametrize("input_shape", INPUT_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize(("name", "options"), SPECS, ids=SPEC_IDS)
def test_vmap_over_stacked_parameters_matches_separate_models(name, options, input_shape):
    models, params, buffers, x = stacked_models(name, options, input_shape)

    def logits(p, b):
        return functional_call(models[0], (p, b), (x,))

    batched = vmap(logits)(params, buffers)
    separate = torch.stack([model(x) for model in models])
    torch.testing.assert_close(batched, separate)


@pytest.mark.parametrize(("name", "options"), SPECS, ids=SPEC_IDS)
def test_double_backward_under_vmap_matches_separate_models(name, options):
    """∇_(x, θ) ⟨∇_θ ℓ(x; θ), v⟩, the Hessian-vector products of the back-gradient, for K stacked models."""
    models, params, buffers, x = stacked_models(name, options, (1, 16, 16))
    y = torch.arange(BATCH) % NUM_CLASSES
    v = {key: torch.randn_like(value) for key, value in params.items()}

    buffers_of_one = {key: value[0] for key, value in buffers.items()}

    def loss(p, inputs):
        return F.cross_entropy(functional_call(models[0], (p, buffers_of_one), (inputs,)), y)

    def grad_dot_v(p, inputs, v_one):
        g = grad(loss)(p, inputs)
        return sum((g[key] * v_one[key]).sum() for key in g)

    d_params, d_x = vmap(grad(grad_dot_v, argnums=(0, 1)), in_dims=(0, None, 0))(params, x, v)

    for k, model in enumerate(models):
        named = dict(model.named_parameters())
        x_k = x.clone().requires_grad_()
        g = torch.autograd.grad(F.cross_entropy(model(x_k), y), list(named.values()), create_graph=True)
        dot = sum((g_i * v[key][k]).sum() for g_i, key in zip(g, named))
        expected = torch.autograd.grad(dot, [x_k, *named.values()], allow_unused=True)
        torch.testing.assert_close(d_x[k], expected[0])
        for key, expected_param in zip(named, expected[1:]):
            expected_param = torch.zeros_like(named[key]) if expected_param is None else expected_param
            torch.testing.assert_close(d_params[key][k], expected_param)
    assert d_x.abs().sum() > 0


@pytest.mark.parametrize(("name", "options"), SPECS, ids=SPEC_IDS)
def test_autograd_double_backward_through_vmapped_forward(name, options):
    """The same second derivatives by ``torch.autograd.grad(create_graph=True)`` on a vmapped forward."""
    models, params, buffers, x = stacked_models(name, options, (1, 8, 8))
    y = torch.arange(BATCH) % NUM_CLASSES
    x = x.requires_grad_()
    leaves = {key: value.requires_grad_() for key, value in params.items()}
    logits = vmap(lambda p, b: functional_call(models[0], (p, b), (x,)))(leaves, buffers)
    losses = F.cross_entropy(logits.flatten(0, 1), y.repeat(K), reduction="none").view(K, BATCH).mean(1)
    g = torch.autograd.grad(losses.sum(), list(leaves.values()), create_graph=True)
    dot = sum(g_i.sum() for g_i in g)
    d_x, *d_params = torch.autograd.grad(dot, [x, *leaves.values()], allow_unused=True)
    assert torch.isfinite(d_x).all() and d_x.abs().sum() > 0
    assert all(d is None or torch.isfinite(d).all() for d in d_params)


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(UserError, match=r"unknown model 'lenett' \(did you mean 'lenet'\?\)"):
        build_model("lenett", (1, 28, 28), 10)


def test_unknown_option_names_it_and_the_valid_ones():
    with pytest.raises(UserError, match=r"'widht' \(did you mean 'width'\?\).*depth, norm, width"):
        build_model("convnet", (3, 32, 32), 10, widht=64)
    with pytest.raises(UserError, match="lenet' takes no options; got 'width'"):
        build_model("lenet", (1, 28, 28), 10, width=64)


@pytest.mark.parametrize(
    ("name", "input_shape", "options", "message"),
    [
        ("convnet", (3, 32, 32), {"norm": "bach"}, r"unknown convnet norm 'bach' \(did you mean 'batch'\?\)"),
        ("convnet", (1, 8, 8), {"depth": 4}, "below 1x1; use depth <= 3"),
        ("convnet", (1, 8, 8), {"width": 0}, "at least 1"),
        ("lenet", (1, 3, 3), {}, "at least 4x4"),
        ("mlp", (1, 8, 8), {"hidden": 100}, "list of positive integers"),
    ],
)
def test_bad_option_values_and_shapes_are_user_errors(name, input_shape, options, message):
    with pytest.raises(UserError, match=message):
        build_model(name, input_shape, 10, **options)


def test_bad_input_shape_or_class_count_is_a_user_error():
    with pytest.raises(UserError, match="input_shape"):
        build_model("mlp", (28, 28), 10)
    with pytest.raises(UserError, match="num_classes"):
        build_model("mlp", (1, 8, 8), 0)


def test_model_options_lists_defaults():
    assert model_options("convnet") == {"width": 128, "depth": 3, "norm": "instance"}
    assert model_options("lenet") == {}
    assert set(MODELS) == {"lenet", "alexcifarnet", "convnet", "mlp", "textcnn", "textlstm", "resnet18"}
    assert model_options("resnet18") == {"width": 64, "norm": "group", "groups": 32}
