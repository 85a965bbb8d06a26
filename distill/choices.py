"""The named choices of the config schema, shared by the schema (``config``) and the
modules that implement them; no imports, so that loading the schema loads no torch."""

from __future__ import annotations

BASELINES: tuple[str, ...] = ("random_real", "optimized_real", "kmeans", "average_real", "knn")
MEMORIES: tuple[str, ...] = ("random_real", "kmeans")  # the kNN baseline's memories
LR_GRID: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)  # the baselines' learning-rate grid
SCHEMES: tuple[str, ...] = ("xavier", "xavier_uniform", "kaiming", "normal", "orthogonal", "default")  # initial weights
BACKGRAD_MODES: tuple[str, ...] = ("stored", "recompute")  # how the unroll's reverse pass gets each step's graph
KERNEL_METHODS: tuple[str, ...] = ("kip", "label_solve")  # the kernel methods (distill.methods.kernel)
KERNELS: tuple[str, ...] = ("fc", "conv", "convnet", "convnet_rf")  # distill.kernels.KERNELS
KERNEL_KINDS: tuple[str, ...] = ("ntk", "nngp")
PREPROCESSING: tuple[str, ...] = ("none", "standard", "zca")  # distill.preprocess.PREPROCESSING
AUGMENTATIONS: tuple[str, ...] = ("flip", "crop")  # distill.preprocess.AUGMENTATIONS
