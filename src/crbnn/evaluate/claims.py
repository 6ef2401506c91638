r"""The verdicts on the paper's claims: one function per claim, criteria fixed before the numbers.

Zhang et al. (MRM 2022) claim that a network trained with the CRB-normalized loss (1) performs
close to an efficient estimator (its CRB-normalized loss converges to about 1), (2) is superior to
a network trained with the mean-squared error (MSE), (3) has less bias and (4) a noise variance
closer to the CRB than the MSE network, and (6) gives in vivo maps that agree better with the
literature; Mao et al. add (5) that their bias-reduced loss reduces the bias further.  Each
function below judges one of them and returns a :class:`Verdict`: ``held``, ``not held`` or ``not
testable``, the numbers it used with their intervals, and its criterion in one sentence.

The criteria were written down before any number of the final test set was seen (docs/claims.md
gives the reasons; the manuscript's Methods quote the same sentences, :attr:`Verdict.criterion`):

* Every number comes from the **final test set** (``results/evaluate_snr_sweep/final/``) or the
  test grids; the development set never enters (:func:`judge_all` takes only the evidence of
  :func:`collect_evidence`, which the summarize rule builds from those files).
* **The paper's SNR** is ``PAPER_SNR`` = 50 (|M0| / sigma; the test grids use it too).  The other
  SNRs of the sweep are reported (where the claim holds), not judged.
* **Intervals** are 95 % percentile bootstrap intervals over the samples (test set) or grid points.
* **Efficient** means the interval of the CRB-normalized loss lies inside ``EFFICIENCY_BAND`` =
  [0.8, 1.25] (a factor 1.25 either way).  Below the band the estimator leans on the prior (it is
  biased; a loss below 1 is not better than efficient), above it is inefficient.
* A **paired comparison** of two estimators A, B over the same samples or grid points uses the
  per-unit difference d_i = f(A_i) - f(B_i), its median and the bootstrap interval of that median;
  A is better when the interval lies below 0.  For bias f = |bias| / sqrt(CRB); for the variance
  f = |std / sqrt(CRB) - r_K|, the distance from the median ratio r_K of an efficient estimator
  with K realizations (sample std, ddof = 1; :func:`efficient_std_ratio`).
* **Training seeds**: when the evidence holds the spread of a claim's statistic over training
  seeds (overlay config/seeds.yaml), a claim whose margin is inside that spread is ``not held``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: The three verdicts a claim can get.
VERDICTS: tuple[str, ...] = ("held", "not held", "not testable")
#: The SNR (|M0| / sigma) at which the paper evaluates and the claims are judged.
PAPER_SNR = 50
#: An efficient estimator's CRB-normalized loss lies in this band (its 95 % interval, to be judged so).
EFFICIENCY_BAND: tuple[float, float] = (0.8, 1.25)
#: Coverage (percent) of the intervals.
CONFIDENCE_PERCENT = 95
#: Bootstrap resamples of the paired comparisons and grid losses.
N_BOOT = 2000
#: Pairs of (estimator, reference) compared by the bias and variance claims.
BIAS_PAIR = ("crb", "mse")
BIAS_REDUCTION_PAIR = ("bias_reduced", "crb")

Interval = list[float]  # [value, lo, hi]


@dataclass
class Verdict:
    """One claim judged: ``verdict`` in :data:`VERDICTS`, the ``reason`` in a sentence, the
    ``criterion`` fixed in advance, and the ``numbers`` (``[value, lo, hi]`` lists for intervals)."""

    name: str
    claim: str
    criterion: str
    verdict: str
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------ statistics
def efficient_std_ratio(realizations: int) -> float:
    """Median of std_K / sigma for K normal draws (sample std, ddof = 1): ``sqrt(chi2.ppf(0.5, K - 1) / (K - 1))``,
    the std/sqrt(CRB) an efficient estimator shows at a typical sample (0.98 for K = 20).

    >>> round(efficient_std_ratio(20), 4), round(efficient_std_ratio(1000), 4)
    (0.9824, 0.9997)
    """
    from scipy.stats import chi2

    k = int(realizations)
    if k < 2:
        raise ValueError(f"need at least 2 realizations, got {k}")
    return float(math.sqrt(chi2.ppf(0.5, k - 1) / (k - 1)))


def bootstrap_interval(values: NDArray[np.float64], statistic: str, rng: np.random.Generator,
                       n_boot: int = N_BOOT) -> Interval:
    """``[statistic, lo, hi]`` of the finite ``values`` (``statistic``: ``mean`` or ``median``) with
    the percentile bootstrap interval (:data:`CONFIDENCE_PERCENT`); NaNs when no value is finite.

    >>> bootstrap_interval(np.ones(10), "mean", np.random.default_rng(0))
    [1.0, 1.0, 1.0]
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return [math.nan, math.nan, math.nan]
    agg = np.mean if statistic == "mean" else np.median
    value = float(agg(x))
    if n_boot <= 0 or x.size == 1:
        return [value, value, value]
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    boot = agg(x[idx], axis=1)
    tail = (100 - CONFIDENCE_PERCENT) / 2
    return [value, float(np.percentile(boot, tail)), float(np.percentile(boot, 100 - tail))]


def paired_difference(a: NDArray[np.float64], b: NDArray[np.float64], rng: np.random.Generator,
                      n_boot: int = N_BOOT) -> dict[str, Any]:
    """Median of the paired differences ``a_i - b_i`` over the units where both are finite, with its
    bootstrap interval (``difference``: ``[median, lo, hi]``), and the medians of ``a`` and ``b``
    over the same units.

    >>> d = paired_difference(np.zeros(50), np.ones(50), np.random.default_rng(0))
    >>> d["difference"], d["n"]
    ([-1.0, -1.0, -1.0], 50)
    """
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    return {
        "difference": bootstrap_interval(a[ok] - b[ok], "median", rng, n_boot),
        "median_a": float(np.median(a[ok])) if ok.any() else math.nan,
        "median_b": float(np.median(b[ok])) if ok.any() else math.nan,
        "n": int(ok.sum()),
    }


def snr_label(snr: float) -> str:
    """Evidence key of an SNR (``SNR50``), the same as :func:`crbnn.evaluate.summary.snr_key`."""
    return f"SNR{float(snr):g}"


# ------------------------------------------------------------------------------- evidence
def _unit_values(kind: str, bias: NDArray[np.float64], std: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """Per-unit value compared by the ``bias`` or ``variance`` claim (see the module docstring)."""
    if kind == "bias":
        return np.abs(bias)
    return np.abs(std - efficient_std_ratio(k))


def _paired_block(bias: Mapping[str, NDArray[np.float64]], std: Mapping[str, NDArray[np.float64]],
                  parameters: Sequence[str], k: int, rng: np.random.Generator, n_boot: int) -> dict[str, Any]:
    """Paired comparisons of the claims' pairs: ``{kind: {"A-B": {p: paired_difference}}}``;
    ``bias`` / ``std`` map an estimator to its per-unit values [units, P]."""
    out: dict[str, Any] = {}
    for kind, pairs in (("bias", (BIAS_PAIR, BIAS_REDUCTION_PAIR)), ("variance", (BIAS_PAIR,))):
        for a, b in pairs:
            if a not in bias or b not in bias:
                continue
            va, vb = (_unit_values(kind, bias[e], std[e], k) for e in (a, b))
            out.setdefault(kind, {})[f"{a}-{b}"] = {
                p: paired_difference(va[:, j], vb[:, j], rng, n_boot) for j, p in enumerate(parameters)}
    return out


def sweep_evidence(ds: Any, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """Evidence from an SNR sweep (``results/evaluate_snr_sweep/final/sweep.nc``): per estimator,
    SNR and parameter the mean CRB-normalized loss with its interval (``loss``), the median
    |bias|/sqrt(CRB) and its noise floor, and at every SNR the paired comparisons of the bias and
    variance claims over the samples that both estimators saw (``paired``)."""
    rng = np.random.default_rng(seed)
    ests = [str(e) for e in ds["estimator"].values]
    params = [str(p) for p in ds["parameter"].values]
    estimated = [str(p) for p in ds["estimated"].values] if "estimated" in ds.coords else params[:-1]
    out: dict[str, Any] = {"snrs": [float(s) for s in ds["snr"].values], "estimators": ests,
                           "parameters": params, "realizations": {}, "n_samples": {},
                           "loss": {}, "median_abs_bias": {}, "bias_floor": {}, "paired": {}}
    for e in ests:
        out["realizations"][e] = int(ds["n_realizations"].sel(estimator=e))
        out["n_samples"][e] = int(ds["n_samples"].sel(estimator=e))
        for s in ds["snr"].values:
            key = snr_label(float(s))
            sel = ds.sel(estimator=e, snr=s)
            for stat, dest in (("mean_loss", "loss"), ("median_abs_bias", "median_abs_bias")):
                out[dest].setdefault(e, {})[key] = {
                    p: [float(sel[stat].sel(parameter=p)), float(sel[f"{stat}_lo"].sel(parameter=p)),
                        float(sel[f"{stat}_hi"].sel(parameter=p))] for p in params}
            if "bias_floor" in ds:
                out["bias_floor"].setdefault(e, {})[key] = {p: float(sel["bias_floor"].sel(parameter=p)) for p in params}
    if "sample_bias_over_sqrt_crb" in ds:
        nets = [e for e in ests if e != "nlls"]
        k = min(out["realizations"][e] for e in nets) if nets else 0
        for s in ds["snr"].values:
            bias = {e: ds["sample_bias_over_sqrt_crb"].sel(estimator=e, snr=s).values for e in nets}
            std = {e: ds["sample_std_over_sqrt_crb"].sel(estimator=e, snr=s).values for e in nets}
            if k >= 2:
                out["paired"][snr_label(float(s))] = _paired_block(bias, std, estimated, k, rng, n_boot)
        out["paired_realizations"] = k
    return out


def grid_evidence(ds: Any, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """Evidence from a test grid (``results/evaluate_grid/<grid>.nc``): per estimator and parameter the
    mean CRB-normalized loss over the grid points with a bootstrap interval over the points, the
    grid's SNR (``M0_abs / sigma``), and the paired comparisons of the bias and variance claims over
    the grid points."""
    rng = np.random.default_rng(seed)
    ests = [str(e) for e in ds["estimator"].values]
    params = [str(p) for p in ds["parameter"].values]
    k = int(np.min(ds["n_realizations"].values)) if "n_realizations" in ds else int(ds.attrs.get("realizations", 0))
    out: dict[str, Any] = {"snr": float(ds.attrs["M0_abs"]) / float(ds.attrs["sigma"]), "realizations": k,
                           "loss": {}, "paired": {}}

    def flat(var: str, e: str) -> NDArray[np.float64]:
        a = ds[var].sel(estimator=e).values  # [P, axes...]
        return a.reshape(a.shape[0], -1).T  # [points, P]

    for e in ests:
        loss = flat("normalized_loss", e)
        out["loss"][e] = {p: bootstrap_interval(loss[:, j], "mean", rng, n_boot) for j, p in enumerate(params)}
    nets = [e for e in ests if e != "nlls"]
    if k >= 2:
        bias = {e: flat("bias_over_sqrt_crb", e) for e in nets}
        std = {e: flat("std_over_sqrt_crb", e) for e in nets}
        out["paired"] = _paired_block(bias, std, params, k, rng, n_boot)
        from crbnn.evaluate.grid import bias_noise_floor

        out["bias_floor"] = {e: dict(zip(params, bias_noise_floor(std[e], k).tolist())) for e in nets}
    return out


def collect_evidence(sweep: Any | None, grids: Mapping[str, Any], n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """All the numbers the verdicts read: the final test set's SNR sweep and the test grids."""
    out: dict[str, Any] = {"n_boot": int(n_boot), "grids": {}}
    if sweep is not None:
        out["sweep"] = sweep_evidence(sweep, n_boot, seed)
    for i, (g, ds) in enumerate(grids.items()):
        out["grids"][g] = grid_evidence(ds, n_boot, seed + 1 + i)
    return out


# --------------------------------------------------------------------------------- claims
def _band_class(iv: Interval) -> str:
    """Where an interval lies relative to :data:`EFFICIENCY_BAND`."""
    lo_b, hi_b = EFFICIENCY_BAND
    _, lo, hi = iv
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "missing"
    if lo >= lo_b and hi <= hi_b:
        return "efficient"
    if hi < lo_b:
        return "prior-leaning"
    if lo > hi_b:
        return "inefficient"
    return "undecided"


def _at_paper_snr(sweep: Mapping[str, Any], what: str, est: str) -> dict[str, Interval] | None:
    return sweep.get(what, {}).get(est, {}).get(snr_label(PAPER_SNR))


def _margin_note(margin: float, spread: float | None) -> str:
    return "" if spread is None else f" (seed spread {spread:.3g}, margin {margin:.3g})"


def _apply_seed_spread(v: Verdict, margin: float, spread: float | None) -> Verdict:
    """A held claim whose margin is inside the training-seed spread is not held."""
    v.numbers["margin"] = margin
    v.numbers["seed_spread"] = spread
    if v.verdict == "held" and spread is not None and margin <= spread:
        v.verdict = "not held"
        v.reason += f"; but the margin {margin:.3g} is inside the spread over training seeds {spread:.3g}"
    return v


def claim_efficiency(evidence: Mapping[str, Any], estimator: str = "crb",
                     seed_spread: float | None = None) -> Verdict:
    """Claim 1: the CRB network's CRB-normalized loss converges to about 1 (it is efficient)."""
    lo_b, hi_b = EFFICIENCY_BAND
    criterion = (f"held when the {CONFIDENCE_PERCENT} % interval of the CRB network's CRB-normalized loss lies "
                 f"inside [{lo_b:g}, {hi_b:g}] for every estimated parameter at SNR {PAPER_SNR:g}, on the final "
                 "test set and on every test grid; an interval below the band is prior-leaning (biased), above it "
                 "inefficient")
    claim = "the CRB-trained network's CRB-normalized loss converges to about 1 (efficient)"
    sweep = evidence.get("sweep", {})
    checks: dict[str, dict[str, Any]] = {}
    at50 = _at_paper_snr(sweep, "loss", estimator)
    if at50:
        checks["test set"] = {p: {"loss": iv, "class": _band_class(iv)} for p, iv in at50.items() if p != "mean"}
    for g, ev in evidence.get("grids", {}).items():
        if estimator in ev.get("loss", {}) and math.isclose(ev["snr"], PAPER_SNR, rel_tol=1e-6):
            checks[f"grid {g}"] = {p: {"loss": iv, "class": _band_class(iv)} for p, iv in ev["loss"][estimator].items()}
    # where (over SNR) the mean over parameters is efficient
    by_snr = {key: _band_class(v["mean"]) for key, v in sweep.get("loss", {}).get(estimator, {}).items() if "mean" in v}
    numbers: dict[str, Any] = {"band": list(EFFICIENCY_BAND), "at_paper_snr": checks, "by_snr": by_snr,
                               "efficient_snrs": [float(k[3:]) for k, c in by_snr.items() if c == "efficient"]}
    if at50 and "mean" in at50:
        numbers["test_mean_at_paper_snr"] = at50["mean"]
    if not checks:
        return Verdict("efficiency", claim, criterion, "not testable",
                       f"no CRB network evaluated at SNR {PAPER_SNR:g}", numbers)
    classes = [(where, p, c["class"]) for where, d in checks.items() for p, c in d.items()]
    bad = [f"{p} on the {where} ({cls})" for where, p, cls in classes if cls != "efficient"]
    if any(cls == "missing" for *_, cls in classes):
        return Verdict("efficiency", claim, criterion, "not testable", "intervals missing", numbers)
    values = [c["loss"] for d in checks.values() for c in d.values()]
    margin = min(min(iv[1] - lo_b, hi_b - iv[2]) for iv in values)
    if bad:
        v = Verdict("efficiency", claim, criterion, "not held", "not efficient: " + ", ".join(bad), numbers)
    else:
        v = Verdict("efficiency", claim, criterion, "held",
                    f"every interval inside [{lo_b:g}, {hi_b:g}] at SNR {PAPER_SNR:g}", numbers)
    return _apply_seed_spread(v, margin, seed_spread)


def compare_losses(a: Interval, b: Interval) -> str:
    """Outcome of comparing the CRB-normalized losses of A and B (intervals ``[value, lo, hi]``):
    ``prior-leaning`` when either interval lies below :data:`EFFICIENCY_BAND` (a lower loss is then
    no better: it comes from the prior), else ``a lower`` / ``b lower`` when the intervals do not
    overlap, else ``overlap``.

    >>> compare_losses([1.0, 0.95, 1.05], [1.5, 1.4, 1.6]), compare_losses([0.5, 0.4, 0.6], [1.5, 1.4, 1.6])
    ('a lower', 'prior-leaning')
    """
    if not all(math.isfinite(x) for x in (*a[1:], *b[1:])):
        return "missing"
    if a[2] < EFFICIENCY_BAND[0] or b[2] < EFFICIENCY_BAND[0]:
        return "prior-leaning"
    if a[2] < b[1]:
        return "a lower"
    if b[2] < a[1]:
        return "b lower"
    return "overlap"


def claim_superiority(evidence: Mapping[str, Any], a: str = "crb", b: str = "mse",
                      seed_spread: float | None = None) -> Verdict:
    """Claim 2: the CRB network is superior to the MSE network (lower CRB-normalized loss)."""
    criterion = (f"held when, at SNR {PAPER_SNR:g} on the final test set, the {CONFIDENCE_PERCENT} % interval of "
                 "the CRB network's CRB-normalized loss lies entirely below the MSE network's for every estimated "
                 f"parameter; not testable for a parameter where either interval lies below {EFFICIENCY_BAND[0]:g} "
                 "(prior-leaning: a lower loss is then no better)")
    claim = "the CRB-trained network is superior to the MSE-trained network"
    loss = evidence.get("sweep", {}).get("loss", {})
    numbers: dict[str, Any] = {"by_snr": {}}
    if a not in loss or b not in loss:
        return Verdict("superiority", claim, criterion, "not testable", f"{a} or {b} network not evaluated", numbers)
    for key in loss[a]:
        if key in loss[b]:
            numbers["by_snr"][key] = {p: {a: loss[a][key][p], b: loss[b][key][p],
                                          "outcome": compare_losses(loss[a][key][p], loss[b][key][p])}
                                      for p in loss[a][key]}
    numbers["snrs_crb_lower"] = [float(k[3:]) for k, d in numbers["by_snr"].items() if d["mean"]["outcome"] == "a lower"]
    at50 = numbers["by_snr"].get(snr_label(PAPER_SNR))
    if not at50:
        return Verdict("superiority", claim, criterion, "not testable", f"no SNR {PAPER_SNR:g} in the sweep", numbers)
    per = {p: d["outcome"] for p, d in at50.items() if p != "mean"}
    numbers["at_paper_snr"] = per
    numbers["ratio_at_paper_snr"] = at50["mean"][b][0] / at50["mean"][a][0]
    margin = min(at50[p][b][1] - at50[p][a][2] for p in per)
    worse = [f"{p} ({o.replace('a lower', f'{a} lower').replace('b lower', f'{b} lower')})"
             for p, o in per.items() if o in ("b lower", "overlap")]
    if worse:
        v = Verdict("superiority", claim, criterion, "not held", "not lower for " + ", ".join(worse), numbers)
    elif all(o == "a lower" for o in per.values()):
        v = Verdict("superiority", claim, criterion, "held", f"lower for every parameter at SNR {PAPER_SNR:g}", numbers)
    else:
        v = Verdict("superiority", claim, criterion, "not testable",
                    "prior-leaning or missing for " + ", ".join(p for p, o in per.items() if o != "a lower"), numbers)
    return _apply_seed_spread(v, margin, seed_spread)


def _paired_claim(name: str, claim: str, kind: str, pair: tuple[str, str], evidence: Mapping[str, Any],
                  seed_spread: float | None, what: str) -> Verdict:
    """A claim that A's per-unit ``kind`` value is below B's (paired), on the final test set at the
    paper's SNR and on every test grid, for every estimated parameter."""
    a, b = pair
    criterion = (f"held when the {CONFIDENCE_PERCENT} % interval of the median paired difference of {what} "
                 f"({a} minus {b} network, over the same samples or grid points) lies below 0 for every estimated "
                 f"parameter, on the final test set at SNR {PAPER_SNR:g} and on every test grid")
    key = f"{a}-{b}"
    checks: dict[str, dict[str, Any]] = {}
    sweep = evidence.get("sweep", {})
    at50 = sweep.get("paired", {}).get(snr_label(PAPER_SNR), {}).get(kind, {}).get(key)
    if at50:
        checks["test set"] = at50
    for g, ev in evidence.get("grids", {}).items():
        d = ev.get("paired", {}).get(kind, {}).get(key)
        if d and math.isclose(ev["snr"], PAPER_SNR, rel_tol=1e-6):
            checks[f"grid {g}"] = d
    numbers: dict[str, Any] = {"pair": [a, b], "at_paper_snr": checks}
    if kind == "bias":
        floors = {"test set": sweep.get("bias_floor", {}).get(a, {}).get(snr_label(PAPER_SNR))}
        floors.update({f"grid {g}": ev.get("bias_floor", {}).get(a) for g, ev in evidence.get("grids", {}).items()})
        numbers["noise_floor"] = {w: f for w, f in floors.items() if f}
    if kind == "variance" and sweep.get("paired_realizations"):
        numbers["efficient_std_ratio"] = efficient_std_ratio(sweep["paired_realizations"])
    if not checks:
        return Verdict(name, claim, criterion, "not testable", f"{a} or {b} network not evaluated at SNR {PAPER_SNR:g}",
                       numbers)
    diffs = [(where, p, d["difference"]) for where, per in checks.items() for p, d in per.items()]
    if any(not math.isfinite(iv[2]) for *_, iv in diffs):
        return Verdict(name, claim, criterion, "not testable", "paired differences missing", numbers)
    failed = [f"{p} on the {where} ({iv[0]:+.3g} [{iv[1]:+.3g}, {iv[2]:+.3g}])" for where, p, iv in diffs if iv[2] >= 0]
    margin = min(-iv[2] for *_, iv in diffs)
    if failed:
        v = Verdict(name, claim, criterion, "not held", "not lower for " + "; ".join(failed), numbers)
    else:
        v = Verdict(name, claim, criterion, "held", f"lower for every parameter on the test set and every grid", numbers)
    return _apply_seed_spread(v, margin, seed_spread)


def claim_bias(evidence: Mapping[str, Any], seed_spread: float | None = None) -> Verdict:
    """Claim 3: the CRB loss reduces the bias compared with the MSE loss."""
    return _paired_claim("bias", "the CRB-trained network has less bias than the MSE-trained network", "bias",
                         BIAS_PAIR, evidence, seed_spread, "|bias|/sqrt(CRB)")


def claim_variance(evidence: Mapping[str, Any], seed_spread: float | None = None) -> Verdict:
    """Claim 4: the CRB loss brings the noise variance closer to the CRB than the MSE loss."""
    return _paired_claim("variance", "the CRB-trained network's noise variance is closer to the CRB than the "
                         "MSE-trained network's", "variance", BIAS_PAIR, evidence, seed_spread,
                         "|std/sqrt(CRB) - r_K| (r_K: the median ratio of an efficient estimator with K realizations)")


def claim_bias_reduction(evidence: Mapping[str, Any], seed_spread: float | None = None) -> Verdict:
    """Claim 5 (Mao et al.): the bias-reduced network has less bias than the CRB network."""
    return _paired_claim("bias_reduction", "the bias-reduced network (Mao et al.) has less bias than the "
                         "CRB-trained network", "bias", BIAS_REDUCTION_PAIR, evidence, seed_spread, "|bias|/sqrt(CRB)")


def claim_invivo(regions: Mapping[str, Any] | None, seed: int = 0) -> Verdict:
    """Claim 6: in vivo maps of the CRB network agree better with the literature than the MSE network's,
    judged by :func:`crbnn.evaluate.literature.claim_invivo` from the in vivo ``regions.json``
    (regions found from the coefficient image, so no compared estimator selects them)."""
    from crbnn.evaluate.literature import CRITERION
    from crbnn.evaluate.literature import claim_invivo as judge

    claim = "in vivo maps of the CRB-trained network agree better with the literature than the MSE-trained network's"
    if not regions:
        return Verdict("invivo", claim, CRITERION, "not testable", "the in vivo slice was not mapped in this run", {})
    out = dict(judge(regions, seed=seed))
    verdict, reason, criterion = out.pop("verdict"), out.pop("reason"), out.pop("criterion")
    return Verdict("invivo", claim, criterion, verdict, reason, out)


def judge_all(evidence: Mapping[str, Any], invivo: Mapping[str, Any] | None = None,
              seed_spread: Mapping[str, float] | None = None, invivo_seed: int = 0) -> dict[str, Any]:
    """Every claim's verdict (``{name: Verdict.to_dict()}``, in the order of the paper) and ``line``,
    one sentence that lists each claim with its verdict.  ``invivo``: the in vivo ``regions.json``
    (``results/images/invivo/regions.json``) as a dict, ``invivo_seed`` its block bootstrap's seed."""
    spread = dict(seed_spread or {})
    verdicts = [
        claim_efficiency(evidence, seed_spread=spread.get("efficiency")),
        claim_superiority(evidence, seed_spread=spread.get("superiority")),
        claim_bias(evidence, seed_spread=spread.get("bias")),
        claim_variance(evidence, seed_spread=spread.get("variance")),
        claim_bias_reduction(evidence, seed_spread=spread.get("bias_reduction")),
        claim_invivo(invivo, seed=invivo_seed),
    ]
    out: dict[str, Any] = {v.name: v.to_dict() for v in verdicts}
    out["line"] = "; ".join(f"{v.name.replace('_', ' ')}: {v.verdict}" for v in verdicts)
    out["seed_spread_measured"] = bool(spread)
    return out


def seed_spread(sweeps: Sequence[Any], n_boot: int = 200) -> dict[str, float]:
    """Spread over training seeds of each claim's margin: ``max - min`` of the margin that the claim
    has on each sweep alone (the final test set's sweep of the networks of one seed each; the grids
    are left out, they were evaluated for the first seed only).  Claims without a margin on at least
    two sweeps are left out."""
    margins: dict[str, list[float]] = {}
    for i, ds in enumerate(sweeps):
        judged = judge_all(collect_evidence(ds, {}, n_boot=n_boot, seed=i))
        for name in CLAIM_NAMES:
            m = judged.get(name, {}).get("numbers", {}).get("margin")
            if m is not None and math.isfinite(m):
                margins.setdefault(name, []).append(float(m))
    return {k: max(v) - min(v) for k, v in margins.items() if len(v) >= 2}


#: The claims in the order of the paper (keys of ``summary["claims"]``).
CLAIM_NAMES: tuple[str, ...] = ("efficiency", "superiority", "bias", "variance", "bias_reduction", "invivo")
