"""The verdicts on the paper's claims (crbnn.evaluate.claims): for every claim one synthetic case
where it holds and one for each reason it fails, from evidence built by hand and from real sweep
and grid files made by the library's own evaluation functions."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from crbnn.evaluate import claims as C
from crbnn.evaluate.grid import evaluate_grid, write_netcdf
from crbnn.evaluate.snr_sweep import SweepEstimator, evaluate_snr_sweep

PARAMS = ["m0s", "T1", "T2f"]


def iv(v: float, half: float = 0.05) -> list[float]:
    return [v, v - half, v + half]


def diff(v: float, half: float = 0.02) -> dict:
    return {"difference": iv(v, half), "median_a": 0.1, "median_b": 0.1 - v, "n": 100}


def evidence(crb=1.0, mse=1.8, bias_d=-0.1, var_d=-0.05, br_d=-0.04, grid_crb=1.0) -> dict:
    """Evidence where every claim holds by default; arguments move one number each."""
    loss = {e: {"SNR50": {**{p: iv(v) for p in PARAMS}, "mean": iv(v)}, "SNR10": {**{p: iv(0.6) for p in PARAMS},
                                                                             "mean": iv(0.6)}}
            for e, v in (("crb", crb), ("mse", mse), ("bias_reduced", crb))}
    paired = {"bias": {"crb-mse": {p: diff(bias_d) for p in PARAMS},
                       "bias_reduced-crb": {p: diff(br_d) for p in PARAMS}},
              "variance": {"crb-mse": {p: diff(var_d) for p in PARAMS}}}
    grid = {"snr": 50.0, "realizations": 20, "loss": {"crb": {p: iv(grid_crb) for p in PARAMS},
                                                       "mse": {p: iv(mse) for p in PARAMS}},
            "paired": copy.deepcopy(paired), "bias_floor": {"crb": {p: 0.15 for p in PARAMS}}}
    return {"sweep": {"loss": loss, "paired": {"SNR50": paired}, "paired_realizations": 20,
                      "bias_floor": {"crb": {"SNR50": {p: 0.15 for p in PARAMS}}}},
            "grids": {"m0s-T1": grid}}


def test_every_claim_holds_on_good_evidence() -> None:
    out = C.judge_all(evidence())
    for name in ("efficiency", "superiority", "bias", "variance", "bias_reduction"):
        assert out[name]["verdict"] == "held", (name, out[name]["reason"])
        assert out[name]["criterion"] and out[name]["numbers"]
    assert out["invivo"]["verdict"] == "not testable"  # no in vivo regions given
    assert out["line"].startswith("efficiency: held; superiority: held; bias: held")
    assert set(C.CLAIM_NAMES) <= set(out)
    assert out["efficiency"]["numbers"]["efficient_snrs"] == [50.0]  # SNR 10 is prior-leaning
    assert out["efficiency"]["numbers"]["by_snr"]["SNR10"] == "prior-leaning"
    json.dumps(out)


@pytest.mark.parametrize("crb, grid_crb, reason", [
    (0.6, 1.0, "prior-leaning"),   # below the band on the test set: biased, not better
    (1.5, 1.0, "inefficient"),
    (1.0, 1.22, "undecided"),      # interval straddles the band's edge on a grid
])
def test_efficiency_fails_for_each_reason(crb: float, grid_crb: float, reason: str) -> None:
    v = C.claim_efficiency(evidence(crb=crb, grid_crb=grid_crb))
    assert v.verdict == "not held" and reason in v.reason


def test_efficiency_not_testable_without_snr_50() -> None:
    ev = evidence()
    ev["sweep"]["loss"]["crb"].pop("SNR50")
    ev["grids"]["m0s-T1"]["snr"] = 30.0  # a grid at another SNR does not judge the paper's SNR
    assert C.claim_efficiency(ev).verdict == "not testable"


@pytest.mark.parametrize("crb, mse, verdict, word", [
    (1.0, 1.02, "not held", "overlap"),       # intervals overlap: no difference shown
    (1.5, 1.0, "not held", "mse lower"),
    (1.0, 0.5, "not testable", "prior-leaning"),  # the MSE network leans on the prior: lower is not better
])
def test_superiority_fails_for_each_reason(crb: float, mse: float, verdict: str, word: str) -> None:
    v = C.claim_superiority(evidence(crb=crb, mse=mse))
    assert v.verdict == verdict and word in v.reason


def test_superiority_ratio_and_snrs() -> None:
    v = C.claim_superiority(evidence())
    assert v.numbers["ratio_at_paper_snr"] == pytest.approx(1.8)
    assert v.numbers["snrs_crb_lower"] == [50.0]  # at SNR 10 both lean on the prior


@pytest.mark.parametrize("name, kw", [("bias", "bias_d"), ("variance", "var_d"), ("bias_reduction", "br_d")])
@pytest.mark.parametrize("value", [0.1, 0.0])  # the other network better, or no difference
def test_paired_claims_fail_when_not_lower(name: str, kw: str, value: float) -> None:
    fn = {"bias": C.claim_bias, "variance": C.claim_variance, "bias_reduction": C.claim_bias_reduction}[name]
    assert fn(evidence()).verdict == "held"
    v = fn(evidence(**{kw: value}))
    assert v.verdict == "not held" and "not lower" in v.reason


def test_paired_claim_fails_on_one_grid_only() -> None:
    ev = evidence()
    ev["grids"]["m0s-T1"]["paired"]["bias"]["crb-mse"]["T1"] = diff(0.05)
    v = C.claim_bias(ev)
    assert v.verdict == "not held" and "T1 on the grid m0s-T1" in v.reason
    assert v.numbers["noise_floor"]["test set"]["m0s"] == 0.15


def test_seed_spread_turns_a_small_margin_into_not_held() -> None:
    ev = evidence(bias_d=-0.1)  # margin: the interval's upper end -0.08 is 0.08 below 0
    assert C.claim_bias(ev, seed_spread=0.05).verdict == "held"
    v = C.claim_bias(ev, seed_spread=0.2)
    assert v.verdict == "not held" and "training seeds" in v.reason
    assert C.judge_all(ev, seed_spread={"bias": 0.2})["seed_spread_measured"]


def test_verdict_rejects_unknown_words() -> None:
    with pytest.raises(ValueError, match="not one of"):
        C.Verdict("x", "c", "k", "did not hold", "r")


def test_efficient_std_ratio_matches_simulation() -> None:
    rng = np.random.default_rng(0)
    s = rng.standard_normal((200_000, 20)).std(axis=1, ddof=1)
    assert C.efficient_std_ratio(20) == pytest.approx(np.median(s), abs=2e-3)


# --------------------------------------------------------------- evidence from real evaluation files
def _linear_problem(n: int = 40, seed: int = 0):
    """A linear toy model c = A theta (M0 = 1): least squares with the true M0 is efficient."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((6, 3)) + 1j * rng.standard_normal((6, 3))
    theta = rng.uniform(0.5, 1.5, (n, 3))
    c = theta @ a.T
    fisher = np.real(a.conj().T @ a)  # sigma = 1 per real/imaginary part (crbnn.physics.crb)
    crb = np.tile(np.diag(np.linalg.inv(fisher)), (n, 1))
    return a, theta, c, crb


def _estimators(a, shrink: float):
    gram = np.real(a.conj().T @ a)

    def efficient(y, m0):  # least squares for real theta: solve Re(A^H A) theta = Re(A^H y / M0)
        return np.linalg.solve(gram, np.real((y / m0[:, None]) @ a.conj()).T).T

    def biased(y, m0):  # shrinks toward 1: biased, lower variance
        return 1 + shrink * (efficient(y, m0) - 1)

    return efficient, biased


def test_evidence_from_a_sweep_file(tmp_path: Path) -> None:
    a, theta, c, crb = _linear_problem()
    eff, biased = _estimators(a, 0.5)
    ds = evaluate_snr_sweep(c, theta, crb, PARAMS,
                            {"crb": SweepEstimator(eff, with_m0=True), "mse": SweepEstimator(biased, with_m0=True),
                             "nlls": SweepEstimator(eff, max_samples=10, max_realizations=5, with_m0=True)},
                            snrs=[50.0], sigma=0.01, realizations=20, seed=1, n_boot=200)
    write_netcdf(tmp_path / "sweep.nc", ds)
    assert ds.attrs["paired_samples"] == 10 and ds.attrs["paired_realizations"] == 5
    assert np.isnan(ds["sample_normalized_loss"].sel(estimator="nlls").values[0, 10:]).all()
    ev = C.sweep_evidence(ds, n_boot=200)
    assert set(ev["paired"]["SNR50"]) == {"bias", "variance"}
    # least squares is efficient: its loss is near 1
    assert 0.8 < ev["loss"]["crb"]["SNR50"]["mean"][0] < 1.25
    v = C.claim_bias({"sweep": ev, "grids": {}})
    assert v.verdict == "held", v.reason  # the unbiased estimator has less bias than the shrunk one
    assert v.numbers["noise_floor"]["test set"]["m0s"] == pytest.approx(0.674 / np.sqrt(20), rel=0.2)
    # variance: the efficient one is closer to the CRB than the shrunk one (std ratio 0.5)
    assert C.claim_variance({"sweep": ev, "grids": {}}).verdict == "held"


def test_evidence_from_a_grid_and_common_realizations() -> None:
    a, theta, c, crb = _linear_problem(n=16)
    eff, biased = _estimators(a, 0.5)
    params = np.zeros((16, 7))
    params[:, :3] = theta
    axes = [("m0s", np.arange(4.0)), ("T1", np.arange(4.0))]
    calls = {}

    def wrap(f, name):
        def g(y):
            calls[name] = y.shape[0]
            return f(y, np.ones(y.shape[0], complex))  # M0 = 1: random_phase off, M0_abs 1
        return g

    from crbnn.evaluate.grid import EstimatorSpec

    ds = evaluate_grid(c, params, crb, PARAMS, axes,
                       {"crb": EstimatorSpec(wrap(eff, "crb")), "mse": EstimatorSpec(wrap(biased, "mse")),
                        "nlls": EstimatorSpec(wrap(eff, "nlls"), max_realizations=6)},
                       realizations=12, M0_abs=1.0, sigma=0.02, seed=3, random_phase=False)
    assert calls == {"crb": 16 * 12, "mse": 16 * 12, "nlls": 16 * 6}
    assert list(ds["n_realizations"].values) == [6, 6, 6]  # every estimator judged on the same 6
    ev = C.grid_evidence(ds, n_boot=100)
    assert ev["snr"] == pytest.approx(50.0) and ev["realizations"] == 6
    assert ev["paired"]["bias"]["crb-mse"]["m0s"]["n"] == 16


def test_summary_claims_never_read_the_development_set(tmp_path: Path) -> None:
    """Changing every development number leaves every verdict unchanged."""
    from crbnn.evaluate.summary import summarize

    a, theta, c, crb = _linear_problem()
    eff, biased = _estimators(a, 0.5)
    ds = evaluate_snr_sweep(c, theta, crb, PARAMS, {"crb": SweepEstimator(eff, with_m0=True),
                                                    "mse": SweepEstimator(biased, with_m0=True)},
                            snrs=[50.0], sigma=0.01, realizations=10, seed=1, n_boot=50)
    write_netcdf(tmp_path / "sweep.nc", ds)
    dev = {}
    for k, value in (("good", 1.0), ("bad", 50.0)):
        p = tmp_path / f"dev_{k}.json"
        p.write_text(json.dumps({"crb_loss_mean": value, "crb_loss": {"m0s": value}}))
        dev[k] = summarize(snr_sweep_nc=tmp_path / "sweep.nc", dev_evaluations={"crb": p})
    assert dev["good"]["development"] != dev["bad"]["development"]
    assert dev["good"]["claims"] == dev["bad"]["claims"]
    assert "dev" not in json.dumps(dev["good"]["evidence"])


def test_seed_spread_from_replicate_sweeps(tmp_path: Path) -> None:
    """Sweeps of networks of other training seeds give each claim's margin a spread, which the
    summary passes to the verdicts (train.seed_replicates)."""
    from crbnn.evaluate.summary import summarize

    a, theta, c, crb = _linear_problem()
    paths = []
    for k, shrink in enumerate((0.5, 0.6, 0.8)):  # the "MSE network" of each seed shrinks differently
        eff, biased = _estimators(a, shrink)
        ds = evaluate_snr_sweep(c, theta, crb, PARAMS, {"crb": SweepEstimator(eff, with_m0=True),
                                                        "mse": SweepEstimator(biased, with_m0=True)},
                                snrs=[50.0], sigma=0.01, realizations=10, seed=1, n_boot=50)
        paths.append(tmp_path / f"sweep{k}.nc")
        write_netcdf(paths[-1], ds)
    from crbnn.evaluate.grid import read_netcdf

    spread = C.seed_spread([read_netcdf(p) for p in paths], n_boot=50)
    assert spread["bias"] > 0 and spread["variance"] > 0
    s = summarize(snr_sweep_nc=paths[0], replicate_sweeps=paths[1:])
    assert s["seed_spread"]["n_seeds"] == 3 and s["claims"]["seed_spread_measured"]
    assert s["claims"]["bias"]["numbers"]["seed_spread"] == pytest.approx(s["seed_spread"]["spread"]["bias"])


def test_numbers_text_states_margin_beside_seed_spread() -> None:
    """Where the spread over training seeds was measured, the numbers sentence gives the margin beside it."""
    from crbnn.report.claims_text import claim_numbers_text

    v = {"name": "invivo", "reason": "no published values", "numbers": {"margin": 0.039, "seed_spread": 0.0112}}
    assert claim_numbers_text(v) == "no published values; margin 0.0390 against a spread over training seeds of 0.0112"
    v["numbers"]["seed_spread"] = None
    assert claim_numbers_text(v) == "no published values"


def test_key_text_of_efficiency_names_the_band() -> None:
    """The abstract's sentence of the efficiency claim gives the test-set mean with its interval and the band."""
    from crbnn.evaluate.claims import EFFICIENCY_BAND
    from crbnn.report.claims_text import claim_key_text

    v = {"name": "efficiency", "verdict": "not held", "reason": "T2f above the band",
         "numbers": {"test_mean_at_paper_snr": [1.02, 0.99, 1.05]}}
    text = claim_key_text(v)
    assert f"band [{EFFICIENCY_BAND[0]:g}, {EFFICIENCY_BAND[1]:g}]" in text and "1.02 [0.990, 1.05]" in text
    assert text.endswith("; T2f above the band")
