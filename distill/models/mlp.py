"""A multi-layer perceptron on flattened images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from distill.errors import UserError


class MLP(nn.Module):
    """flatten – (linear – relu) for each width in ``hidden`` – linear to the classes.

    ``hidden=[]`` gives a linear classifier.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        *,
        hidden: Sequence[int] = (100, 100),
    ) -> None:
        super().__init__()
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence) or not all(
            isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in hidden
        ):
            raise UserError(
                f"mlp option 'hidden' must be a list of positive integers such as [100, 100]; got {hidden!r}"
            )
        channels, height, width = input_shape
        sizes = [channels * height * width, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for size_in, size_out in zip(sizes, sizes[1:]):
            layers += [nn.Linear(size_in, size_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
