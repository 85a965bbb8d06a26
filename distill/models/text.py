"""Sentence classifiers on embedded text: TextCNN (Kim, 2014) and a bidirectional LSTM.

A sentence arrives embedded (GloVe, as preprocessing) as a one-channel "image"
``[N, 1, L, D]``: ``L`` tokens (``max_len``, padded at the end with zero vectors) of
``D``-dimensional embeddings. Synthetic sentences are learned directly as such matrices.
Both models are pure functions of their parameters, written with ops whose double
backward is exact under ``torch.func.vmap`` + ``torch.func.grad`` (the unroll's
Hessian-vector products): no dropout, no buffers, no fused recurrent kernels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill.errors import UserError


def sentence_shape(model: str, input_shape: tuple[int, int, int]) -> tuple[int, int]:
    """``(L, D)`` of one-channel sentence inputs ``(1, L, D)``; other channel counts are a ``UserError``."""
    channels, length, embed_dim = input_shape
    if channels != 1:
        raise UserError(
            f"{model} takes embedded sentences of shape (1, max_len, embed_dim); got {channels} channels"
        )
    return length, embed_dim


def positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


class TextCNN(nn.Module):
    """Kim (2014): for each filter width ``w`` in ``widths``, ``maps`` feature maps
    ``c_i = relu(W · x_{i:i+w−1} + b)`` (a ``Conv2d(1, maps, (w, D))`` over the sentence),
    max-over-time pooling ``ĉ = max_i c_i``, the pooled maps of all widths concatenated,
    then a linear layer to the classes. No dropout (the inner loop is deterministic).

    The convolutions are computed as one matmul of each width's unfolded windows
    ``[N, L−w+1, w·D]`` with the flattened conv weights: the same numbers as ``conv(x)``,
    and about 1.6× faster than a convolution for the K stacked weights under ``vmap``.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        *,
        widths: Sequence[int] = (3, 4, 5),
        maps: int = 100,
    ) -> None:
        super().__init__()
        length, embed_dim = sentence_shape("textcnn", input_shape)
        if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths or not all(
            positive_int(w) for w in widths
        ):
            raise UserError(
                f"textcnn option 'widths' must be a list of positive integers such as [3, 4, 5]; got {widths!r}"
            )
        if not positive_int(maps):
            raise UserError(f"textcnn option 'maps' must be a positive integer; got {maps!r}")
        if max(widths) > length:
            raise UserError(f"textcnn filter width {max(widths)} is longer than the sentences (max_len {length})")
        self.convs = nn.ModuleList(nn.Conv2d(1, maps, (w, embed_dim)) for w in widths)
        self.classifier = nn.Linear(maps * len(widths), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        seq = x.squeeze(1)  # [N, L, D]
        pooled = []
        for conv in self.convs:
            windows = seq.unfold(1, conv.kernel_size[0], 1).transpose(2, 3).flatten(2)  # [N, L−w+1, w·D]
            feature_maps = torch.relu(F.linear(windows, conv.weight.flatten(1), conv.bias))  # [N, L−w+1, maps]
            pooled.append(feature_maps.amax(dim=1))
        return self.classifier(torch.cat(pooled, dim=1))


class TextLSTM(nn.Module):
    """A bidirectional LSTM classifier: ``layers`` stacked bidirectional layers of ``hidden``
    units, then a linear layer on ``[h_fwd ; h_bwd]``, the forward direction's last hidden
    state (after token ``L``) concatenated with the backward direction's (after token 1).

    Each direction runs the LSTM cell (Hochreiter & Schmidhuber, 1997; PyTorch's gate order)

        (i, f, g, o) = x_t W_ihᵀ + h_{t−1} W_hhᵀ + b
        c_t = σ(f) ⊙ c_{t−1} + σ(i) ⊙ tanh(g),   h_t = σ(o) ⊙ tanh(c_t),   h_0 = c_0 = 0

    with elementary ops in a Python loop over time, so back-propagation through time is
    exact under ``vmap`` and double backward (``nn.LSTM``'s fused kernel is neither). The
    input projection of all steps is one matmul, and both directions advance together in
    one batched matmul per step. Layer ``l``'s parameters are ``weight_ih_l{l}`` ``[4H, in]``,
    ``weight_hh_l{l}`` ``[4H, H]`` and ``bias_l{l}`` ``[4H]`` (one bias, where ``nn.LSTM``
    has two that only ever appear summed), and the same with suffix ``_reverse`` for the
    backward direction; layer ``l > 0`` reads both directions' outputs (``in = 2H``).

    Sentences are padded at the end, so the forward state also reads the padding; the
    backward state reads the padding first and the sentence's words last.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        *,
        hidden: int = 100,
        layers: int = 1,
    ) -> None:
        super().__init__()
        _, embed_dim = sentence_shape("textlstm", input_shape)
        if not positive_int(hidden) or not positive_int(layers):
            raise UserError(
                "textlstm options 'hidden' and 'layers' must be positive integers; "
                f"got hidden={hidden!r}, layers={layers!r}"
            )
        self.hidden, self.layers = hidden, layers
        for layer in range(layers):
            in_features = embed_dim if layer == 0 else 2 * hidden
            shapes = {"weight_ih": (4 * hidden, in_features), "weight_hh": (4 * hidden, hidden), "bias": (4 * hidden,)}
            for suffix in ("", "_reverse"):
                for kind, shape in shapes.items():
                    self.register_parameter(f"{kind}_l{layer}{suffix}", nn.Parameter(torch.empty(shape)))
        self.classifier = nn.Linear(2 * hidden, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.LSTM``'s default: every recurrent weight and bias ~ U(±1/√H)."""
        bound = self.hidden**-0.5
        for p in self.parameters(recurse=False):
            nn.init.uniform_(p, -bound, bound)

    def direction_pair(self, kind: str, layer: int) -> Tensor:
        """The forward and backward directions' parameter ``kind`` of ``layer``, stacked: [2, ...]."""
        return torch.stack([getattr(self, f"{kind}_l{layer}"), getattr(self, f"{kind}_l{layer}_reverse")])

    def forward(self, x: Tensor) -> Tensor:
        seq = x.squeeze(1)  # [N, L, D]
        for layer in range(self.layers):
            seq, last = self.bidirectional_layer(seq, layer)
        return self.classifier(torch.cat([last[0], last[1]], dim=1))

    def bidirectional_layer(self, seq: Tensor, layer: int) -> tuple[Tensor, Tensor]:
        """One layer on ``seq`` [N, L, in]: outputs [N, L, 2H] (forward ; backward, aligned by
        position) and the last hidden state of each direction [2, N, H]."""
        w_ih = self.direction_pair("weight_ih", layer)  # [2, 4H, in]
        w_hh_t = self.direction_pair("weight_hh", layer).transpose(1, 2)  # [2, H, 4H]
        bias = self.direction_pair("bias", layer)  # [2, 4H]
        # Direction 1 reads the sentence reversed; time runs along dim 2 of both.
        both = torch.stack([seq, seq.flip(1)])  # [2, N, L, in]
        projected = torch.matmul(both, w_ih.transpose(1, 2).unsqueeze(1)) + bias[:, None, None, :]  # [2, N, L, 4H]
        h = c = projected.new_zeros(2, seq.shape[0], self.hidden)
        states = []
        # unbind, not projected[:, :, t]: the backward of indexing would write every step's
        # gradient into its own zero tensor of the full size, O(L²) (50× slower at L = 400).
        for projected_t in projected.unbind(2):
            gates = projected_t + torch.bmm(h, w_hh_t)
            i, f, g, o = gates.chunk(4, dim=2)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            states.append(h)
        hs = torch.stack(states, dim=2)  # [2, N, L, H]
        outputs = torch.cat([hs[0], hs[1].flip(1)], dim=2)
        return outputs, h
