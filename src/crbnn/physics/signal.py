"""Hybrid-state magnetization-transfer signal of the linearized generalized Bloch model.

Implements docs/physics.md sections 2, 4 and 5 in PyTorch, float64, batched over parameter sets, on
CPU or CUDA with the same code, with exact Jacobians (forward sensitivities):

* per-pulse propagators ``expm(H T)`` and their Frechet derivatives in all requested directions
  at once (:func:`crbnn.physics.expm.expm_frechet_torch`; on GPUs and in the pure-torch path); on the CPU with
  numba the pulse derivatives are computed only as the vectors the sensitivities need,
  ``L(H T, dH/dtheta T) v`` with v the state entering the pulse (:mod:`crbnn.physics.pulse_cpu`, same
  numbers to rounding); free precession depends only on TRF, so it is computed once per distinct
  TRF of the train;
* the crushed inversion pulse 1, the phase-cycling frame rotation Rz(pi) and the xs spoiler;
* the periodic steady state: the cycle operator A by one sweep of 6x6 products (kept as the
  partial products Phi_n), the fixed point, every echo m_n = Phi_n m_1 at once; derivatives by a
  second sweep of matrix-vector products and the linear fixed-point equation (I - A) dm_1 = dA m_1.

State ordering ``[xf, yf, zf, xs, zs, 1]``.  Units: s, 1/s, rad, rad/s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Union

import numpy as np
import torch

from crbnn.common.parameters import GENERAL_PARAMETERS, M0_PARAMETERS, PAPER_PARAMETERS, TISSUE_PARAMETERS
from crbnn.physics.expm import expm_frechet_torch
from crbnn.physics.expm_cpu import expm_cached_cpu, expm_frechet_cpu
from crbnn.physics.hamiltonian import (
    _ELEMENTARY,
    XF,
    XS,
    YF,
    ZF,
    ZS,
    _build,
    _Directions,
    _directions_tensor,
    _hamiltonian_entries,
)
from crbnn.physics.pulse_cpu import ELEMENTARY_CPU, pulse_directional_cpu
from crbnn.physics.r2sl import R2slTable, default_table
from crbnn.physics.recurrence import (
    affine_recurrence,
    compose_repetition,
    corrected_tangents,
    echo_states,
    prefix_products,
    pulse_inputs,
    tangent_sources,
    tangent_sources_dpv,
)

from . import recurrence as _recurrence

Number = Union[float, int, complex, np.ndarray, torch.Tensor]


def expm_frechet(a: torch.Tensor, e: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """exp(a) and Frechet derivatives: the numba kernel on the CPU, the torch code on a GPU."""
    if a.device.type == "cpu":
        return expm_frechet_cpu(a, e)
    return expm_frechet_torch(a, e)


def _action_path(x: torch.Tensor) -> bool:
    """Pulse derivatives as vectors (numba kernels) rather than Frechet matrices: CPU with numba."""
    return x.device.type == "cpu" and _recurrence._HAVE_NUMBA and expm_frechet is _DEFAULT_EXPM_FRECHET


def _direction_coefficients(dirs: _Directions, s_count: int, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-signal coefficients [S, K, 7] of :data:`crbnn.physics.pulse_cpu.ELEMENTARY_CPU` and per-pulse R2sl ones [S, N, K]."""
    k = len(dirs)
    coef = torch.zeros(s_count, k, len(ELEMENTARY_CPU), dtype=torch.float64, device=device)
    cr2 = torch.zeros(s_count, n, k, dtype=torch.float64, device=device)
    for d, combo in enumerate(dirs.coef):
        for name, c in combo.items():
            if name == "R2sl":
                cr2[:, :, d] = c
            else:
                coef[:, d, ELEMENTARY_CPU.index(name)] = c[:, 0] if isinstance(c, torch.Tensor) and c.ndim == 2 else c
    return coef, cr2


_DEFAULT_EXPM_FRECHET = expm_frechet


def _as_tensor(x: Number, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        if x.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.complex64):
            raise TypeError(f"physics inputs must be float64/complex128 tensors (got {x.dtype}); the model is computed in float64")
        t = x
    else:
        t = torch.as_tensor(np.asarray(x))
    if not t.is_complex():
        t = t.to(torch.float64)
    return t.to(device) if device is not None else t


def _check_sequence(alpha: torch.Tensor, trf: torch.Tensor, tr: float) -> None:
    if alpha.ndim != 1 or trf.shape != alpha.shape:
        raise ValueError(f"pulse train: alpha and trf must be 1-D of equal length, got {tuple(alpha.shape)} and {tuple(trf.shape)}")
    if alpha.numel() < 2:
        raise ValueError("pulse train: at least 2 pulses are needed (pulse 1 is the inversion)")
    if not bool(torch.isfinite(alpha).all() & torch.isfinite(trf).all()):
        raise ValueError("pulse train: alpha and trf must be finite (found NaN or inf)")
    if bool((trf <= 0).any()):
        raise ValueError(f"pulse train: every TRF must be > 0 s, found {float(trf.min()):.6g}")
    if not np.isfinite(tr) or tr <= float(trf.max()):
        raise ValueError(f"pulse train: TR = {tr} s must exceed the longest pulse TRF = {float(trf.max()):.6g} s")


def _pulse_directions(
    alpha: torch.Tensor, trf: torch.Tensor, p: dict[str, torch.Tensor], dirs: _Directions, table: R2slTable
) -> tuple[torch.Tensor, _Directions]:
    """Per-pulse R2sl [S, N] (docs/physics.md section 3) and the directions with R2sl resolved per pulse.

    A direction's ``R2sl_dT2s`` / ``R2sl_dB1`` coefficients become the per-pulse coefficient of the
    elementary R2sl direction (chain rule through the table's derivatives); per-signal coefficients
    get a pulse axis ([S] -> [S, 1]).
    """
    r2sl, dr_dt2s, dr_db1 = table.lookup(trf[None, :], alpha[None, :], p["B1"][:, None], p["T2s"][:, None])
    dirs_pulse = _Directions()
    for combo in dirs.coef:
        c2 = dict(combo)
        if "R2sl_dT2s" in c2 or "R2sl_dB1" in c2:
            c2["R2sl"] = c2.pop("R2sl_dT2s", 0.0) * dr_dt2s + c2.pop("R2sl_dB1", 0.0) * dr_db1
        dirs_pulse.add({kk: (vv[:, None] if isinstance(vv, torch.Tensor) and vv.ndim == 1 else vv) for kk, vv in c2.items()})
    return r2sl, dirs_pulse


def _pulse_propagators(
    alpha: torch.Tensor, trf: torch.Tensor, p: dict[str, torch.Tensor], ps: dict[str, torch.Tensor],
    r2sl: torch.Tensor, dirs_pulse: _Directions,
) -> tuple[torch.Tensor, torch.Tensor | None, object, bool, torch.Tensor, list]:
    """Pulse propagators exp(H_n TRF_n) [S, N, 6, 6] (docs/physics.md section 4) and their derivatives.

    All pulses in one batch; pulse 1 (the crushed inversion) is patched afterwards: its generator keeps
    only the semi-solid block [[-R2sl, B1 w1], [-B1 w1, 0]] (saturation without relaxation or
    exchange) and its free-pool part is the instantaneous rotation by theta = B1 alpha_1.  Returns
    ``(pp, dp, cache, action, theta, dtheta)``: ``dp`` [S, N, 6, K, 6] the Frechet derivatives (None on
    the CPU action path, where ``cache`` holds the Pade factors for :mod:`crbnn.physics.pulse_cpu`),
    ``theta`` [S] and ``dtheta`` (per direction, d theta / d direction).
    """
    device, dt = alpha.device, torch.float64
    s_count, n, k = p["m0s"].shape[0], alpha.shape[0], len(dirs_pulse)
    w1 = (alpha / trf)[None, :]  # [1, N]
    shape = (s_count, n)
    t_p = trf[None, :]
    ent = _hamiltonian_entries(ps, w1, r2sl)
    x = _build(shape, {key: (v * t_p).expand(shape) for key, v in ent.items()}, dt, device)
    keep = torch.zeros(6, 6, dtype=dt, device=device)
    keep[XS, XS] = keep[XS, ZS] = keep[ZS, XS] = 1.0
    x[:, 0] *= keep
    action = bool(k) and _action_path(x)
    cache = dp = None
    if action:  # CPU: exp only; derivatives later as vectors (crbnn.physics.pulse_cpu)
        pp, cache = expm_cached_cpu(x.reshape(-1, 6, 6))
    elif k:
        e = _directions_tensor(dirs_pulse, ps, w1, t_p, shape, _ELEMENTARY, device)
        e[:, 0] *= keep[:, None, :]
        pp, dp = expm_frechet(x.reshape(-1, 6, 6), e.reshape(-1, 6, k, 6))
        dp = dp.reshape(*shape, 6, k, 6)
    else:
        pp, _ = expm_frechet(x.reshape(-1, 6, 6))
    pp = pp.reshape(*shape, 6, 6)
    theta = p["B1"] * alpha[0]  # [S] flip angle of the inversion
    sin2 = torch.sin(theta / 2) ** 2
    pp[:, 0, XF, XF] = sin2
    pp[:, 0, YF, YF] = -sin2
    pp[:, 0, ZF, ZF] = torch.cos(theta)
    dtheta = []  # per direction: d(theta)/d(direction) [S] or a float
    for combo in dirs_pulse.coef:
        cw = combo.get("B1w", 0.0)
        cw = cw[:, 0] if isinstance(cw, torch.Tensor) and cw.ndim == 2 else cw
        dtheta.append(cw * alpha[0])
    if dp is not None:
        for d, dth in enumerate(dtheta):
            dp[:, 0, XF, d, XF] = 0.5 * torch.sin(theta) * dth
            dp[:, 0, YF, d, YF] = -0.5 * torch.sin(theta) * dth
            dp[:, 0, ZF, d, ZF] = -torch.sin(theta) * dth
    return pp, dp, cache, action, theta, dtheta


def _free_precession(
    trf: torch.Tensor, tr: float, ps: dict[str, torch.Tensor], dirs: _Directions, s_count: int
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Free precession Dxs exp(H_0 t) over the half intervals t (docs/physics.md section 4), once per
    distinct interval: ``(pf [S, U, 6, 6], dpf [S, U, 6, K, 6] or None, inv [N])``; pulse n uses
    ``pf[:, inv[n]]``.  The xs spoiler Dxs zeroes row xs of both."""
    device, dt, k = trf.device, torch.float64, len(dirs)
    tfp_all = torch.cat([torch.full((1,), tr / 2, dtype=dt, device=device), (tr - trf[1:]) / 2])
    tfp_u, inv = torch.unique(tfp_all, return_inverse=True)
    nu = tfp_u.shape[0]
    ushape = (s_count, nu)
    zero = torch.zeros((), dtype=dt, device=device)
    ent_fp = _hamiltonian_entries(ps, zero, zero)
    xf = _build(ushape, {key: (v * tfp_u[None, :]).expand(ushape) for key, v in ent_fp.items()}, dt, device)
    fp_allowed = ("m0s", "R1f", "R1s", "R2f", "Rex", "omega0")
    if k:
        coefs = _Directions()
        for combo in dirs.coef:
            coefs.add({kk: (vv[:, None] if isinstance(vv, torch.Tensor) and vv.ndim == 1 else vv) for kk, vv in combo.items() if kk in fp_allowed})
        efp = _directions_tensor(coefs, ps, zero, tfp_u[None, :], ushape, fp_allowed, device)
        pf, dpf = expm_frechet(xf.reshape(-1, 6, 6), efp.reshape(-1, 6, k, 6))
        dpf = dpf.reshape(*ushape, 6, k, 6)
        dpf[..., XS, :, :] = 0.0  # xs spoiler Dxs on the left
    else:
        pf, _ = expm_frechet(xf.reshape(-1, 6, 6))
        dpf = None
    pf = pf.reshape(*ushape, 6, 6)  # per distinct interval; pulse n uses pf[:, inv[n]]
    pf[..., XS, :] = 0.0
    return pf, dpf, inv


def _fixed_point(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Sweep 1 (docs/physics.md section 5): partial products Phi_n = U_n ... U_2, the cycle operator
    A = U_1 Phi_N, the fixed point m_1 = A m_1 and every echo m_n = Phi_n m_1.

    Returns ``(m [S, N, 6], phi, (lu, piv))``: the LU factors of I - A (5x5) serve the tangents too.
    """
    s_count, dt, device = u.shape[0], u.dtype, u.device
    phi, a = prefix_products(u)
    eye5 = torch.eye(5, dtype=dt, device=device)
    ia = eye5 - a[:, :5, :5]
    lu, piv = torch.linalg.lu_factor(ia)
    m1 = torch.ones(s_count, 6, dtype=dt, device=device)
    m1[:, :5] = torch.linalg.lu_solve(lu, piv, a[:, :5, 5:6])[..., 0]
    return echo_states(phi, m1), phi, (lu, piv)


def _sources(
    alpha: torch.Tensor, trf: torch.Tensor, p: dict[str, torch.Tensor], dirs_pulse: _Directions,
    pf: torch.Tensor, dpf: torch.Tensor, inv: torch.Tensor, pp: torch.Tensor, dp: torch.Tensor | None,
    cache: object, action: bool, theta: torch.Tensor, dtheta: list, m: torch.Tensor,
) -> torch.Tensor:
    """Sources q_n = dU_n m_{n-1} [S, N, 6, K] of the tangent recurrence (docs/physics.md section 5).

    On the CPU action path the pulse derivatives come as vectors L(A_n, E_nk) v_n
    (:func:`crbnn.physics.pulse_cpu.pulse_directional_cpu`), plus the inversion's instantaneous
    free-pool rotation; otherwise from the Frechet matrices ``dp``.
    """
    if not action:
        return tangent_sources(pf, dpf, inv, pp, dp, m)
    s_count, n, k = p["m0s"].shape[0], alpha.shape[0], len(dirs_pulse)
    v2 = pulse_inputs(pf, inv, m)  # [S, N, 6] state entering each pulse
    coef, cr2 = _direction_coefficients(dirs_pulse, s_count, n, alpha.device)
    pars = torch.stack([p["m0s"], p["R1f"], p["R1s"], p["Rex"]], dim=1)
    dpv = pulse_directional_cpu(cache, v2.reshape(-1, 6), trf, alpha / trf, pars, coef, cr2).reshape(s_count, n, 6, k)
    st = torch.sin(theta)
    for d, dth in enumerate(dtheta):  # the inversion's instantaneous free-pool rotation
        dpv[:, 0, XF, d] += 0.5 * st * dth * v2[:, 0, XF]
        dpv[:, 0, YF, d] -= 0.5 * st * dth * v2[:, 0, YF]
        dpv[:, 0, ZF, d] -= st * dth * v2[:, 0, ZF]
    return tangent_sources_dpv(pf, dpf, inv, pp, dpv, v2, m)


def _tangents(u: torch.Tensor, q: torch.Tensor, phi: torch.Tensor, lu_piv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Sweep 2 (docs/physics.md section 5): tangents of rows xf, yf [S, N, 2, K] with dm_1 = 0, then the
    fixed-point correction (I - A) dm_1 = dA m_1 (the LU factors of sweep 1)."""
    lu, piv = lu_piv
    s_count, k = u.shape[0], q.shape[-1]
    g, gcycle = affine_recurrence(u, q, rows=2)  # the signal needs rows xf, yf only
    dm1 = torch.zeros(s_count, 6, k, dtype=u.dtype, device=u.device)
    dm1[:, :5] = torch.linalg.lu_solve(lu, piv, gcycle[:, :5])
    return corrected_tangents(g, phi, dm1)


def _steady_state(
    alpha: torch.Tensor, trf: torch.Tensor, tr: float, p: dict[str, torch.Tensor], dirs: _Directions, table: R2slTable
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Echo states m_n [S, N, 6] and the derivatives of their xf, yf rows [S, N, 2, K] (None if K = 0) at M0 = 1.

    The six steps of docs/physics.md sections 3-5: per-pulse R2sl, pulse propagators, free precession,
    repetition operators U_n = Pfp Ppulse Rz Pfp, sweep 1 (fixed point and echoes), sources and
    sweep 2 (tangents).
    """
    s_count = p["m0s"].shape[0]
    ps = {key: val[:, None] for key, val in p.items()}  # [S, 1]
    r2sl, dirs_pulse = _pulse_directions(alpha, trf, p, dirs, table)
    pp, dp, cache, action, theta, dtheta = _pulse_propagators(alpha, trf, p, ps, r2sl, dirs_pulse)
    pf, dpf, inv = _free_precession(trf, tr, ps, dirs, s_count)
    u = compose_repetition(pf, inv, pp)  # [S, N, 6, 6]
    m, phi, lu_piv = _fixed_point(u)
    if not len(dirs):
        return m, None
    q = _sources(alpha, trf, p, dirs_pulse, pf, dpf, inv, pp, dp, cache, action, theta, dtheta, m)
    return m, _tangents(u, q, phi, lu_piv)


def _resolve_table(r2sl: R2slTable | None) -> R2slTable:
    if r2sl is None:
        return default_table()
    if not isinstance(r2sl, R2slTable):
        raise TypeError(f"r2sl must be an R2slTable or None, got {type(r2sl).__name__}")
    return r2sl


def _broadcast_params(params: Mapping[str, Number], names: Sequence[str], device) -> tuple[dict[str, torch.Tensor], tuple[int, ...]]:
    missing = [nm for nm in names if nm not in params]
    extra = [nm for nm in params if nm not in names]
    if missing or extra:
        raise KeyError(f"params: expected keys {list(names)}; missing {missing}, unexpected {extra}")
    ts = {nm: _as_tensor(params[nm], device) for nm in names}
    shape = torch.broadcast_shapes(*(t.shape for t in ts.values()))
    return {nm: t.expand(shape).reshape(-1) for nm, t in ts.items()}, tuple(shape)


def _device_of(*xs) -> torch.device:
    for x in xs:
        if isinstance(x, torch.Tensor):
            return x.device
    return torch.device("cpu")


def _run(
    alpha, trf, tr, p: dict[str, torch.Tensor], dirs: _Directions, table: R2slTable, chunk: int | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Signal xf + i yf at M0 = 1 [S, N] and its derivatives [S, N, K], in chunks of signals."""
    s_count = p["m0s"].shape[0]
    n = alpha.shape[0]
    if chunk is None:
        chunk = max(1, 16384 // n) if alpha.device.type == "cpu" else max(1, 2**19 // n)
    sig, jac = [], []
    for start in range(0, s_count, chunk):
        sl = slice(start, start + chunk)
        pc = {kk: v[sl] for kk, v in p.items()}
        dc = _Directions()
        for combo in dirs.coef:
            dc.add({kk: (v[sl] if isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == s_count else v) for kk, v in combo.items()})
        m, dm = _steady_state(alpha, trf, tr, pc, dc, table)
        sig.append(torch.complex(m[..., XF], m[..., YF]))
        if dm is not None:
            jac.append(torch.complex(dm[..., XF, :], dm[..., YF, :]))
    signal = torch.cat(sig) if sig else torch.zeros(0, n, dtype=torch.complex128, device=alpha.device)
    if len(dirs):
        return signal, torch.cat(jac) if jac else torch.zeros(0, n, len(dirs), dtype=torch.complex128, device=alpha.device)
    return signal, None


def _assemble(
    sig1: torch.Tensor, jac1: torch.Tensor | None, m0: torch.Tensor, wrt: Sequence[str],
    m0_columns: Mapping[str, complex], shape: tuple[int, ...],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scale the M0 = 1 signal [S, N] and derivatives [S, N, K] by M0 and order the Jacobian as ``wrt``.

    ``m0_columns`` maps the names of derivatives by M0 itself to their factor (ds/dM0 = factor s1).
    """
    m0 = m0[:, None]
    signal = (m0 * sig1).reshape(*shape, -1)
    if not wrt:
        return signal, None
    cols = []
    d = 0
    for nm in wrt:
        if nm in m0_columns:
            cols.append(m0_columns[nm] * sig1)
        else:
            cols.append(m0 * jac1[..., d])
            d += 1
    return signal, torch.stack(cols, dim=-1).reshape(*shape, sig1.shape[-1], len(wrt))


def _check_wrt(wrt: Sequence[str], allowed: Sequence[str]) -> None:
    """A ``KeyError`` naming the first name of ``wrt`` that is not a parameter of the parametrization."""
    for nm in wrt:
        if nm not in allowed:
            raise KeyError(f"wrt: unknown parameter {nm!r}; choose from {tuple(allowed)}")


def _prepare(alpha, trf, tr, device):
    alpha_t = _as_tensor(alpha, device).reshape(-1)
    trf_t = _as_tensor(trf, device).reshape(-1)
    tr = float(tr)
    _check_sequence(alpha_t, trf_t, tr)
    return alpha_t, trf_t, tr


def simulate(
    alpha: Number,
    trf: Number,
    tr: float,
    params: Mapping[str, Number],
    wrt: Sequence[str] = (),
    r2sl: R2slTable | None = None,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Periodic steady-state signal of the pulse train and its Jacobian, general parametrization.

    ``alpha`` (rad) and ``trf`` (s) are the N flip angles and pulse durations, ``tr`` (s) the
    repetition time; ``params`` maps the names of :data:`GENERAL_PARAMETERS` to floats or
    broadcastable float64 tensors (s, 1/s, rad/s).  ``wrt`` names the parameters to differentiate
    by.  Returns ``(signal, jacobian)``: signal complex128 [..., N] (s_n = M0 (xf + i yf) at the
    echoes, demodulated), jacobian complex128 [..., N, len(wrt)] or ``None`` when ``wrt`` is
    empty.  ``r2sl=None`` uses the default table of docs/physics.md (built once, cached on disk).
    The device is that of the first tensor argument (CPU otherwise).

    >>> import math
    >>> a = torch.tensor([math.pi, 0.5, 0.5], dtype=torch.float64); t = torch.tensor([5e-4, 3e-4, 3e-4], dtype=torch.float64)
    >>> p = dict(M0=1.0, m0s=0.15, R1f=0.5, R2f=15.0, Rex=30.0, R1s=3.0, T2s=10e-6, omega0=0.0, B1=1.0)
    >>> s, j = simulate(a, t, 3.5e-3, p, wrt=("M0",))
    >>> s.shape, j.shape, bool(torch.allclose(j[..., 0], s))
    (torch.Size([3]), torch.Size([3, 1]), True)
    """
    device = _device_of(*params.values(), alpha, trf)
    alpha_t, trf_t, tr = _prepare(alpha, trf, tr, device)
    _check_wrt(wrt, GENERAL_PARAMETERS)
    p, shape = _broadcast_params(params, GENERAL_PARAMETERS, device)
    for nm, v in p.items():
        if v.is_complex():
            raise TypeError(f"params[{nm!r}] must be real in the general parametrization (use simulate_paper for complex M0)")
    table = _resolve_table(r2sl)
    dirs = _Directions()
    for nm in wrt:
        if nm == "M0":
            continue
        if nm == "T2s":
            dirs.add({"R2sl_dT2s": 1.0})
        elif nm == "B1":
            dirs.add({"B1w": 1.0, "R2sl_dB1": 1.0})
        else:
            dirs.add({nm: 1.0})
    core = {nm: v for nm, v in p.items() if nm != "M0"}
    sig1, jac1 = _run(alpha_t, trf_t, tr, core, dirs, table, chunk)
    return _assemble(sig1, jac1, p["M0"], wrt, {"M0": 1.0}, shape)


def simulate_paper(
    alpha: Number,
    trf: Number,
    tr: float,
    params: Mapping[str, Number],
    wrt: Sequence[str] = (),
    r2sl: R2slTable | None = None,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Signal and Jacobian in the paper's parametrization (R1f = R1s = 1/T1, T2f = 1/R2f).

    ``params`` maps ``M0`` (complex: scale and receive phase), ``m0s``, ``T1`` (s), ``T2f`` (s),
    ``Rex`` (1/s), ``T2s`` (s), ``omega0`` (rad/s) and ``B1`` to numbers or broadcastable tensors;
    ``wrt`` takes names of :data:`PAPER_PARAMETERS` (``M0_re``/``M0_im``: the real and imaginary
    parts of M0 count as two real parameters).  Returns ``(signal, jacobian)`` as :func:`simulate`.

    >>> import math
    >>> a = torch.tensor([math.pi, 0.5, 0.5], dtype=torch.float64); t = torch.tensor([5e-4, 3e-4, 3e-4], dtype=torch.float64)
    >>> p = dict(M0=1j, m0s=0.15, T1=2.0, T2f=1/15, Rex=30.0, T2s=10e-6, omega0=0.0, B1=1.0)
    >>> s, j = simulate_paper(a, t, 3.5e-3, p, wrt=("M0_re", "M0_im"))
    >>> bool(torch.allclose(j[..., 1], 1j * j[..., 0]))
    True
    """
    names = ("M0",) + TISSUE_PARAMETERS
    device = _device_of(*params.values(), alpha, trf)
    alpha_t, trf_t, tr = _prepare(alpha, trf, tr, device)
    _check_wrt(wrt, PAPER_PARAMETERS)
    p, shape = _broadcast_params(params, names, device)
    m0 = p.pop("M0").to(torch.complex128)
    t1 = p.pop("T1")
    t2f = p.pop("T2f")
    for nm, v in (("T1", t1), ("T2f", t2f)):
        if bool((v <= 0).any()):
            raise ValueError(f"params[{nm!r}] must be > 0 s")
    core = dict(
        m0s=p["m0s"], R1f=1.0 / t1, R1s=1.0 / t1, R2f=1.0 / t2f, Rex=p["Rex"], T2s=p["T2s"], omega0=p["omega0"], B1=p["B1"]
    )
    table = _resolve_table(r2sl)
    dirs = _Directions()
    for nm in wrt:
        if nm in M0_PARAMETERS:
            continue
        if nm == "T1":
            c = -1.0 / t1**2
            dirs.add({"R1f": c, "R1s": c})
        elif nm == "T2f":
            dirs.add({"R2f": -1.0 / t2f**2})
        elif nm == "T2s":
            dirs.add({"R2sl_dT2s": 1.0})
        elif nm == "B1":
            dirs.add({"B1w": 1.0, "R2sl_dB1": 1.0})
        else:
            dirs.add({nm: 1.0})
    sig1, jac1 = _run(alpha_t, trf_t, tr, core, dirs, table, chunk)
    return _assemble(sig1, jac1, m0, wrt, {"M0_re": 1.0, "M0_im": 1j}, shape)
