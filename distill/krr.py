"""Kernel ridge regression (KRR): the math of KIP and Label Solve (Nguyen et al. 2021).

With a kernel ``K``, a support set ``(X_s, y_s)`` of ``n_s`` samples and a target set
``(X_t, y_t)``, KRR predicts ``ŷ_t = K_ts (K_ss + λI)⁻¹ y_s`` with the ridge
``λ = reg · tr(K_ss) / n_s`` (scale-free: ``reg`` is relative to the kernel's mean diagonal).
Every solve goes through a Cholesky factorisation of ``K_ss + λI``; no matrix is inverted.
Labels are one-hot and mean-centred, ``y = e_c − 1/C``. Pure functions of tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from .errors import UserError

KernelFn = Callable[[Tensor, Tensor], Tensor]


def centred_one_hot(y: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``e_{y_i} − 1/C``: the regression targets of class indices ``y``."""
    return torch.nn.functional.one_hot(y, num_classes).to(dtype) - 1.0 / num_classes


def ridge(k_ss: Tensor, reg: float) -> Tensor:
    """``λ = reg · tr(K_ss) / n_s``."""
    return reg * torch.diagonal(k_ss).mean()


def cholesky(k_ss: Tensor, reg: float) -> Tensor:
    """The lower Cholesky factor ``L`` of ``K_ss + λI`` (``L Lᵀ = K_ss + λI``).

    A kernel with non-finite values, or a system that is not numerically positive definite
    (a ridge too small for the support set, or duplicated support samples), is a
    ``UserError`` that names ``kip.reg`` and a value to try."""
    if not torch.isfinite(k_ss).all():
        raise UserError("the kernel of the support set holds non-finite values (inf or nan): the support data diverged, "
                        "or its scale overflows the kernel; lower kip.lr or check the preprocessing")
    system = k_ss + ridge(k_ss, reg) * torch.eye(len(k_ss), dtype=k_ss.dtype, device=k_ss.device)
    factor, info = torch.linalg.cholesky_ex(system)
    if info.item() != 0:
        raise UserError(f"the kernel system K_ss + λI is not positive definite at kip.reg = {reg:g} "
                        f"(λ = {ridge(k_ss, reg).item():.3g}); raise kip.reg, e.g. to {reg * 100:g}")
    return factor


def krr_weights(k_ss: Tensor, y_s: Tensor, reg: float) -> Tensor:
    """``α = (K_ss + λI)⁻¹ y_s`` by two triangular solves with the Cholesky factor."""
    return torch.cholesky_solve(y_s, cholesky(k_ss, reg))


def krr_predict(k_ts: Tensor, k_ss: Tensor, y_s: Tensor, reg: float) -> Tensor:
    """``ŷ_t = K_ts (K_ss + λI)⁻¹ y_s``."""
    return k_ts @ krr_weights(k_ss, y_s, reg)


def kip_loss(k_ts: Tensor, k_ss: Tensor, y_s: Tensor, y_t: Tensor, reg: float) -> Tensor:
    """KIP's loss, Nguyen et al. (2021) eq. (1) averaged over the target batch:
    ``L = 1/(2 n_t) ‖y_t − K_ts (K_ss + λI)⁻¹ y_s‖²_F``."""
    residual = y_t - krr_predict(k_ts, k_ss, y_s, reg)
    return 0.5 * residual.pow(2).sum() / len(y_t)


def kernel_blocks(kernel: KernelFn, x: Tensor, x_s: Tensor, block: int) -> Iterator[tuple[slice, Tensor]]:
    """``(rows, K(x[rows], x_s))`` for consecutive blocks of ``block`` rows of ``x``."""
    for start in range(0, len(x), block):
        rows = slice(start, min(start + block, len(x)))
        yield rows, kernel(x[rows], x_s)


def krr_accuracy(kernel: KernelFn, x_s: Tensor, y_s: Tensor, x: Tensor, y: Tensor, reg: float, block: int = 1000) -> float:
    """The fraction of ``(x, y)`` whose KRR prediction ``argmax_c ŷ_c`` is the class ``y``,
    the kernel evaluated ``block`` rows at a time."""
    with torch.no_grad():
        alpha = krr_weights(kernel(x_s, x_s), y_s, reg)
        correct = sum(int((k_b @ alpha).argmax(-1).eq(y[rows]).sum()) for rows, k_b in kernel_blocks(kernel, x, x_s, block))
    return correct / len(y)


class LabelSolve:
    """Label Solve, Nguyen et al. (2021) eq. (2): the least-norm minimiser
    ``y_s* = argmin ‖y_t − A y_s‖_F``, ``A = K_ts (K_ss + λI)⁻¹``, over the whole target set,
    accumulated one block of target rows at a time (a tall-skinny QR).

    The state is the triangular factor ``R̃`` of the augmented matrix ``[A | y_t]`` of the
    rows seen so far: after every block, ``R̃ ← qr([R̃; A_b | y_b]).R``, an
    ``(n_s + C) × (n_s + C)`` matrix, so memory does not grow with the target set. Writing
    ``R̃ = [[R, c], [0, d]]``, the solution solves ``R y_s = c`` (least norm when ``R`` is
    rank-deficient) and the residual is ``‖y_t − A y_s*‖² = ‖d‖²``. No normal equations
    (they would square the condition number) and no pseudo-inverse of ``A``.
    """

    def __init__(self, k_ss: Tensor, reg: float, num_classes: int, state: Tensor | None = None, rows: int = 0) -> None:
        self.factor = cholesky(k_ss, reg)
        self.n, self.classes = len(k_ss), num_classes
        width = self.n + num_classes
        self.r = state if state is not None else torch.zeros(0, width, dtype=k_ss.dtype, device=k_ss.device)
        self.rows = rows  # target rows absorbed so far

    def add(self, k_bs: Tensor, y_b: Tensor) -> None:
        """Absorb a block of target rows: their kernel against the support ``K_bs`` and labels ``y_b``."""
        self.absorb(self.rows_of(k_bs, y_b), len(k_bs))

    def rows_of(self, k_bs: Tensor, y_b: Tensor) -> Tensor:
        """A block's rows of the augmented matrix, ``[A_b | y_b]`` with ``A_b = K_bs (K_ss + λI)⁻¹``."""
        a_b = torch.cholesky_solve(k_bs.T, self.factor).T  # K_bs (K_ss + λI)⁻¹, as K_ss is symmetric
        return torch.cat([a_b, y_b.to(a_b.dtype)], dim=1)

    def absorb(self, rows: Tensor, count: int) -> None:
        """``R̃ ← qr([R̃; rows]).R``: ``rows`` are ``count`` target rows of the augmented matrix,
        or any matrix with the same ``RᵀR`` (a block's own factor ``qr(rows).R``: blocks
        factored apart, on other processes, then stacked, give the same ``R̃`` up to signs,
        which leave the labels and the residual as they are)."""
        self.r = square_factor(torch.cat([self.r, rows]))
        self.rows += count

    def labels(self) -> Tensor:
        """The least-norm ``y_s*`` of the rows absorbed so far."""
        r = self.r[: self.n, : self.n]
        c = self.r[: self.n, self.n :]
        driver = "gelsd" if r.device.type == "cpu" else None  # gelsd: least norm for a rank-deficient R
        return torch.linalg.lstsq(r, c, driver=driver).solution

    def residual(self) -> float:
        """``‖y_t − A y_s*‖²_F / n_t`` over the rows absorbed so far (``‖d‖² / n_t``)."""
        d = self.r[self.n :, self.n :]
        return float(d.pow(2).sum() / max(self.rows, 1))


def square_factor(rows: Tensor) -> Tensor:
    """``qr(rows).R``, padded with zero rows to a square matrix while ``rows`` has fewer rows than columns."""
    r = torch.linalg.qr(rows, mode="r").R
    missing = rows.shape[1] - len(r)
    return torch.cat([r, r.new_zeros(missing, r.shape[1])]) if missing > 0 else r
