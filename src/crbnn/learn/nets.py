"""Fully connected parameter-estimation networks (architecture only; training is in `crbnn.learn.loop`).

A network maps the ``2R`` real inputs ``[Re c_1..Re c_R, Im c_1..Im c_R]`` of ``R`` normalized
subspace coefficients to the ``E`` estimated tissue parameters in physical units (``m0s`` in 1,
``T1`` and ``T2f`` in s).  The last linear layer produces dimensionless outputs ``o`` that a fixed
per-parameter affine map turns into physical units, ``theta = offset + scale * o``; ``offset`` and
``scale`` are buffers (saved in the state dict) set from the training parameters.

Layer ``i`` (``i = 1..L``) is ``Linear(widths[i-1], widths[i])``.  Every layer but the last is
followed by (optional) BatchNorm and the activation.  A residual pair ``(j, i)`` adds the
pre-normalization output ``h_j`` of layer ``j`` (``h_0`` is the input) to ``h_i`` before layer
``i``'s BatchNorm and activation: ``a_i = act(BN(h_i + h_j))``.

The ``mirror`` residual scheme reproduces the skip connections of the authors' public code
(MRF-CRBLoss, ``models/CRB-paper.py``): the widths rise to a peak and fall again, and each layer
after the peak whose width equals that of a layer before the peak is connected to the latest unused
such layer (a U-Net-like long skip between equal widths).  For the paper widths
``26-128-256-512-1024-768-640-512-384-256-192-128-26-10-6-3`` this gives the pairs
``(3, 7), (2, 9), (1, 11), (0, 12)``: 512, 256, 128 and the 26 inputs, exactly as in that code.
The output layer never receives a skip.

Example:
    >>> net = build_network(PRESETS["paper"], n_inputs=26, n_outputs=3)
    >>> net.residual_pairs
    [(3, 7), (2, 9), (1, 11), (0, 12)]
    >>> count_weights(net)
    2674239
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

#: Hidden-layer presets.  ``hidden`` excludes the input (2R) and output (E) widths.
PRESETS: dict[str, dict[str, Any]] = {
    # Zhang et al. 2022 (MRF-CRBLoss): 26-128-...-6-3 with mirror skips; ~2.7 M weights.
    "paper": {
        "hidden": [128, 256, 512, 1024, 768, 640, 512, 384, 256, 192, 128, 26, 10, 6],
        "residual": "mirror",
        "batchnorm": True,
        "activation": "relu",
    },
    # Sized for a 2-core laptop CPU: ~0.2 M weights, ~25 k samples/s per core for training.
    "default": {
        "hidden": [128, 256, 256, 256, 128, 64],
        "residual": "mirror",
        "batchnorm": True,
        "activation": "relu",
    },
    # Tests and the tiny CI configuration.
    "tiny": {
        "hidden": [32, 32],
        "residual": "none",
        "batchnorm": True,
        "activation": "relu",
    },
}

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}


def mirror_pairs(widths: Sequence[int]) -> list[tuple[int, int]]:
    """Residual pairs ``(j, i)`` of the mirror scheme for the full width list (input first).

    Layers ``1..L-1`` after the (first) widest layer are matched, in order, with the latest unused
    earlier index ``j`` before the peak (``0`` is the input) of equal width.

    Example:
        >>> mirror_pairs([4, 8, 16, 8, 4, 2])
        [(1, 3), (0, 4)]
    """
    widths = list(widths)
    n_layers = len(widths) - 1
    peak = max(range(len(widths)), key=lambda k: (widths[k], -k))
    used: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for i in range(peak + 1, n_layers):  # never the output layer
        candidates = [j for j in range(peak) if widths[j] == widths[i] and j not in used]
        if candidates:
            j = max(candidates)
            used.add(j)
            pairs.append((j, i))
    return pairs


class EstimatorNet(nn.Module):
    """Fully connected estimator with optional BatchNorm, activation and residual additions.

    Args:
        widths: all widths, input (2R) first, output (E) last.
        residual: ``"none"``, ``"mirror"`` or an explicit list of ``(j, i)`` pairs, ``j < i < L``,
            ``widths[j] == widths[i]``.
        batchnorm: BatchNorm1d after every hidden linear layer.
        activation: one of ``relu, gelu, silu, tanh, elu``.
        out_offset, out_scale: per-output affine map to physical units (length E); default 0 and 1.

    Example:
        >>> net = EstimatorNet([4, 8, 8, 2], residual=[(1, 2)])
        >>> net.eval()(torch.zeros(5, 4)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        widths: Sequence[int],
        residual: str | Sequence[Sequence[int]] = "none",
        batchnorm: bool = True,
        activation: str = "relu",
        out_offset: Sequence[float] | None = None,
        out_scale: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"need at least input and output widths >= 1, got {widths}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(_ACTIVATIONS)}")
        n_layers = len(widths) - 1
        if isinstance(residual, str):
            if residual == "none":
                pairs: list[tuple[int, int]] = []
            elif residual == "mirror":
                pairs = mirror_pairs(widths)
            else:
                raise ValueError(f"residual must be 'none', 'mirror' or a list of pairs, got {residual!r}")
        else:
            pairs = [(int(j), int(i)) for j, i in residual]
        for j, i in pairs:
            if not (0 <= j < i < n_layers) or widths[j] != widths[i]:
                raise ValueError(f"invalid residual pair ({j}, {i}) for widths {widths}")
        self.widths = widths
        self.residual_pairs = pairs
        self.batchnorm = bool(batchnorm)
        self.activation = activation
        self._skip_into = {i: j for j, i in pairs}
        self._keep = {j for j, _ in pairs}
        self.linears = nn.ModuleList(nn.Linear(widths[k], widths[k + 1]) for k in range(n_layers))
        self.norms = nn.ModuleList(
            (nn.BatchNorm1d(widths[k + 1]) if batchnorm else nn.Identity()) for k in range(n_layers - 1)
        )
        self.act = _ACTIVATIONS[activation]()
        n_out = widths[-1]
        offset = torch.zeros(n_out) if out_offset is None else torch.as_tensor(out_offset, dtype=torch.float32)
        scale = torch.ones(n_out) if out_scale is None else torch.as_tensor(out_scale, dtype=torch.float32)
        if offset.shape != (n_out,) or scale.shape != (n_out,):
            raise ValueError(f"out_offset and out_scale need length {n_out}")
        self.register_buffer("out_offset", offset.clone())
        self.register_buffer("out_scale", scale.clone())

    def forward_raw(self, x: torch.Tensor) -> torch.Tensor:
        """Dimensionless outputs ``o`` (before the affine map) of normalized inputs ``x [n, 2R]``."""
        saved: dict[int, torch.Tensor] = {0: x} if 0 in self._keep else {}
        a = x
        last = len(self.linears)
        for k, linear in enumerate(self.linears, start=1):
            h = linear(a)
            if k == last:
                return h
            if k in self._keep:
                saved[k] = h
            if k in self._skip_into:
                h = h + saved[self._skip_into[k]]
            a = self.act(self.norms[k - 1](h))
        raise AssertionError("unreachable")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Estimates in physical units ``[n, E]`` of normalized real inputs ``x [n, 2R]``."""
        return self.out_offset + self.out_scale * self.forward_raw(x)

    def architecture(self) -> dict[str, Any]:
        """JSON-able description from which `build_from_architecture` rebuilds the network."""
        return {
            "widths": list(self.widths),
            "residual": [list(p) for p in self.residual_pairs],
            "batchnorm": self.batchnorm,
            "activation": self.activation,
        }


def resolve_network_config(network: dict[str, Any]) -> dict[str, Any]:
    """Merge a config ``network`` section (``preset`` plus optional overrides) into hidden widths etc.

    Keys: ``preset`` (a `PRESETS` name or ``"custom"``), and ``hidden``, ``residual``, ``batchnorm``,
    ``activation`` which override the preset where given (not ``None``).

    Example:
        >>> resolve_network_config({"preset": "tiny", "activation": "gelu"})["activation"]
        'gelu'
    """
    preset = network.get("preset", "default")
    if preset == "custom":
        base: dict[str, Any] = {"hidden": None, "residual": "none", "batchnorm": True, "activation": "relu"}
    elif preset in PRESETS:
        base = dict(PRESETS[preset])
    else:
        raise ValueError(f"unknown network preset {preset!r}; choose from {sorted(PRESETS)} or 'custom'")
    for key in ("hidden", "residual", "batchnorm", "activation"):
        if network.get(key) is not None:
            base[key] = network[key]
    if not base["hidden"]:
        raise ValueError("network: a 'custom' preset needs 'hidden' widths")
    return base


def build_network(
    network: dict[str, Any],
    n_inputs: int,
    n_outputs: int,
    out_offset: Sequence[float] | None = None,
    out_scale: Sequence[float] | None = None,
) -> EstimatorNet:
    """Build an `EstimatorNet` from a config ``network`` section or a `PRESETS` entry.

    Args:
        network: ``{"preset": ..., "hidden": ..., ...}`` (see `resolve_network_config`) or a preset dict.
        n_inputs: 2R, number of real inputs.
        n_outputs: E, number of estimated parameters.
    """
    net = resolve_network_config(network) if "preset" in network else dict(network)
    widths = [int(n_inputs), *[int(w) for w in net["hidden"]], int(n_outputs)]
    return EstimatorNet(widths, net["residual"], net["batchnorm"], net["activation"], out_offset, out_scale)


def build_from_architecture(arch: dict[str, Any]) -> EstimatorNet:
    """Rebuild a network from `EstimatorNet.architecture` (buffers are then loaded from a state dict).

    Example:
        >>> a = EstimatorNet([4, 8, 8, 2], residual="mirror").architecture()
        >>> build_from_architecture(a).architecture() == a
        True
    """
    return EstimatorNet(
        arch["widths"],
        [tuple(p) for p in arch["residual"]],
        arch["batchnorm"],
        arch["activation"],
    )


def count_weights(net: nn.Module) -> int:
    """Number of weights and biases of the linear layers (the paper's "~2.7 M weights")."""
    return sum(p.numel() for m in net.modules() if isinstance(m, nn.Linear) for p in m.parameters())
