"""GEM's gradient projection (Lopez-Paz & Ranzato, "Gradient Episodic Memory", Sec. 3).

With ``g`` the gradient of the current minibatch and ``G = [g_1 … g_t]ᵀ`` the gradients
of the loss on the memories of the ``t`` previous tasks, GEM looks for the update closest
to ``g`` that increases none of those losses:

    min_g̃ ½‖g − g̃‖²   s.t.   ⟨g̃, g_k⟩ ≥ 0  for all k                          (10)

solved through its dual, a QP in ``t`` variables:

    min_v ½ vᵀ(GGᵀ)v + gᵀGᵀv   s.t.   v ≥ margin,        g̃ = Gᵀv* + g          (13)

``margin`` (``memory_strength``) > 0 pushes g̃ further into the feasible cone; a small
``eps·I`` on ``GGᵀ`` keeps the QP strictly convex when memory gradients are collinear,
as in the reference implementation.
"""

from __future__ import annotations

import numpy as np
import quadprog
import torch
from torch import Tensor


def violates(g: Tensor, memory_grads: Tensor) -> bool:
    """Whether some ``⟨g, g_k⟩ < 0``: the step would increase a previous task's loss."""
    return bool((memory_grads @ g < 0).any())


def project(g: Tensor, memory_grads: Tensor, margin: float = 0.0, eps: float = 1e-3) -> Tensor:
    """``g̃`` of equation (13) for the gradient ``g`` ([P]) and ``memory_grads`` ``G``
    ([t, P]); ``g`` itself when it conflicts with no memory. Solved in float64 by quadprog."""
    if not violates(g, memory_grads):
        return g
    G = memory_grads.detach().double().cpu().numpy()
    gradient = g.detach().double().cpu().numpy()
    t = G.shape[0]
    gram = G @ G.T
    gram = 0.5 * (gram + gram.T) + eps * np.eye(t)
    # quadprog: min ½ vᵀ P v − aᵀv  s.t.  Cᵀv ≥ b
    v = quadprog.solve_qp(gram, -(G @ gradient), np.eye(t), np.full(t, margin))[0]
    return torch.from_numpy(G.T @ v + gradient).to(g)
