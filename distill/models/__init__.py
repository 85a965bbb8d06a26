"""Model registry: networks that adapt to a dataset's image shape and class count.

Every model is a plain ``nn.Module`` built from ``(input_shape, num_classes)`` with
``input_shape = (C, H, W)``, plus keyword-only options. The library runs models
functionally — ``torch.func.functional_call`` on parameters stacked over K
initialisations, under ``torch.func.vmap``, differentiated twice — so no model uses
in-place operations, dropout or buffers that ``forward`` updates; BatchNorm always
normalises with batch statistics.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from torch import nn

from distill.errors import UserError, unknown
from distill.models.alexnet import AlexCifarNet
from distill.models.convnet import ConvNet
from distill.models.lenet import LeNet
from distill.models.mlp import MLP
from distill.models.resnet import ResNet18
from distill.models.text import TextCNN, TextLSTM

MODELS: dict[str, type[nn.Module]] = {
    "lenet": LeNet,
    "alexcifarnet": AlexCifarNet,
    "convnet": ConvNet,
    "mlp": MLP,
    "textcnn": TextCNN,
    "textlstm": TextLSTM,
    "resnet18": ResNet18,
}


def model_options(name: str) -> dict[str, Any]:
    """The options model ``name`` accepts, with their defaults."""
    if name not in MODELS:
        raise unknown("model", name, MODELS)
    parameters = inspect.signature(MODELS[name]).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_model(name: str, input_shape: Sequence[int], num_classes: int, **options: Any) -> nn.Module:
    """A freshly initialised model ``name`` for images of shape ``(C, H, W)`` and ``num_classes`` classes.

    Raises ``UserError`` for an unknown model or option, or a shape the model cannot take.
    """
    valid = model_options(name)
    for option in options:
        if option not in valid:
            if not valid:
                raise UserError(f"model '{name}' takes no options; got '{option}'")
            raise unknown(f"{name} option", option, valid)
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(side, int) and side >= 1 for side in shape):
        raise UserError(
            f"input_shape must be (channels, height, width) of positive integers; got {input_shape!r}"
        )
    if num_classes < 1:
        raise UserError(f"num_classes must be at least 1; got {num_classes}")
    try:
        return MODELS[name](shape, num_classes, **options)
    except (TypeError, ValueError, RuntimeError) as error:  # options the architecture cannot be built with
        raise UserError(f"model '{name}' cannot be built for {num_classes} classes on {'x'.join(map(str, shape))} inputs "
                        f"with options {options}: {error}") from None


__all__ = ["MODELS", "AlexCifarNet", "ConvNet", "LeNet", "MLP", "ResNet18", "TextCNN", "TextLSTM", "build_model", "model_options"]
