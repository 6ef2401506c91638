"""The in vivo claim (crbnn.evaluate.literature): literature table, block data, verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crbnn.evaluate.literature import (
    CONSTRAINED,
    LITERATURE,
    UNCONSTRAINED,
    VERDICTS,
    LiteratureValue,
    claim_invivo,
    comparable,
    region_blocks,
)

LIT = (
    LiteratureValue("WM", "m0s", 0.20, 0.02, "SD", CONSTRAINED, 3.0, "synthetic", "Table X"),
    LiteratureValue("WM", "T1", 1.90, 0.10, "SD", CONSTRAINED, 3.0, "synthetic", "Table X"),
    LiteratureValue("GM", "T1", 2.40, None, "none", CONSTRAINED, 3.0, "synthetic", "Table X"),
    LiteratureValue("GM", "T2f", 0.08, None, "none", CONSTRAINED, 1.5, "synthetic (1.5 T: never used)", "Table Y"),
)


def synthetic_regions(crb_offset: float, mse_offset: float, noise: float = 0.01, seed: int = 0) -> dict:
    """A regions.json-like dict: WM (left half) and GM (right half) of a 32 x 32 slice; each estimator's
    maps are the literature values times (1 + offset) plus spatially white noise."""
    rng = np.random.default_rng(seed)
    shape = (32, 32, 1)
    wm = np.zeros(shape, bool)
    wm[:16] = True
    regions = {"WM": wm, "GM": ~wm}
    truth = {"m0s": np.where(wm, 0.20, 0.10), "T1": np.where(wm, 1.90, 2.40), "T2f": np.where(wm, 0.07, 0.08)}
    maps = {}
    for est, off in (("nlls", 0.0), ("crb", crb_offset), ("mse", mse_offset)):
        maps[est] = {p: v * (1 + off) * (1 + noise * rng.standard_normal(shape)) for p, v in truth.items()}
    rows = []
    for est, m in maps.items():
        for r, where in regions.items():
            for p, v in m.items():
                rows.append({"estimator": est, "region": r, "parameter": p, "n": int(where.sum()),
                             "mean": float(v[where].mean()), "sd": float(v[where].std(ddof=1))})
    return {"rows": rows, "differences": rows, "tissue_regions": {"n_voxels": {"WM": 512, "GM": 512}},
            "tissue_blocks": region_blocks(maps, regions, 4)}


def test_literature_table_is_cited_and_has_no_constrained_3t_value() -> None:
    assert LITERATURE and all(v.source and v.location for v in LITERATURE)
    assert {v.model for v in LITERATURE} <= {CONSTRAINED, UNCONSTRAINED}
    assert comparable(LITERATURE) == {}  # verified values are of the unconstrained model only
    assert sorted(comparable(LIT)) == [("GM", "T1"), ("WM", "T1"), ("WM", "m0s")]  # 1.5 T value left out


def test_claim_held_when_crb_is_closer() -> None:
    out = claim_invivo(synthetic_regions(crb_offset=0.01, mse_offset=0.15), LIT, n_boot=300, seed=1)
    assert out["verdict"] == "held", out["reason"]
    assert out["cells"] == ["WM/m0s", "WM/T1", "GM/T1"]
    crb, mse = out["estimators"]["crb"], out["estimators"]["mse"]
    assert crb["distance"] == pytest.approx(0.01, abs=0.005) and mse["distance"] == pytest.approx(0.15, abs=0.01)
    assert out["difference_interval"][0] > 0 and out["crb_closer"]
    assert crb["interval"][0] <= crb["distance"] <= crb["interval"][1]
    assert crb["cells"]["WM/m0s"]["z"] == pytest.approx((crb["cells"]["WM/m0s"]["mean"] - 0.20) / 0.02)
    assert crb["cells"]["GM/T1"]["z"] is None  # no spread published
    assert set(out["estimators"]) == {"nlls", "crb", "mse"}
    rows = {(r["estimator"], r["region"], r["parameter"]): r["mean"] for r in synthetic_regions(0.01, 0.15)["rows"]}
    assert crb["cells"]["WM/T1"]["mean"] == pytest.approx(rows[("crb", "WM", "T1")])  # the rows' region mean
    json.dumps(out)  # serializable for summary.json


def test_claim_not_held_when_mse_is_closer_or_the_margin_is_noise() -> None:
    out = claim_invivo(synthetic_regions(crb_offset=0.15, mse_offset=0.01), LIT, n_boot=300, seed=1)
    assert out["verdict"] == "not held" and not out["crb_closer"]
    # CRB closer by a margin far inside the sampling uncertainty of the region means: not held
    noisy = claim_invivo(synthetic_regions(crb_offset=0.000, mse_offset=0.002, noise=0.3), LIT, n_boot=300, seed=1)
    assert noisy["verdict"] == "not held" and noisy["difference_interval"][0] <= 0 <= noisy["difference_interval"][1]


def test_claim_not_testable_without_comparable_literature_or_data(tmp_path: Path) -> None:
    data = synthetic_regions(0.01, 0.15)
    out = claim_invivo(data, LITERATURE)
    assert out["verdict"] == "not testable" and "constrained model at 3 T" in out["reason"]
    assert out["criterion"] and out["verdict"] in VERDICTS
    unconstrained_only = [LiteratureValue("WM", "T1", 1.9, None, "", UNCONSTRAINED, 3.0, "x", "y")]
    assert claim_invivo(data, unconstrained_only)["verdict"] == "not testable"
    no_blocks = {k: v for k, v in data.items() if k != "tissue_blocks"}
    assert "block data" in claim_invivo(no_blocks, LIT)["reason"]
    no_mse = json.loads(json.dumps(data))
    for reg in no_mse["tissue_blocks"]["regions"].values():
        del reg["mse"]
    assert "mse" in claim_invivo(no_mse, LIT)["reason"]
    p = tmp_path / "regions.json"
    p.write_text(json.dumps(data))
    assert claim_invivo(p, LIT, n_boot=100)["verdict"] == "held"  # a path works like the dict


def test_region_blocks_sum_and_count_per_block() -> None:
    v = np.arange(36.0).reshape(6, 6, 1)
    v[0, 0] = np.nan
    where = np.zeros((6, 6, 1), bool)
    where[:4, :4] = True
    b = region_blocks({"e": {"T1": v}}, {"R": where}, 2, ("T1",))["regions"]["R"]
    assert b["n_blocks"] == 4 and b["e"]["T1"]["n"] == [3, 4, 4, 4]
    assert sum(b["e"]["T1"]["sum"]) == pytest.approx(np.nansum(v[:4, :4]))
    with pytest.raises(ValueError, match="block size"):
        region_blocks({"e": {"T1": v}}, {"R": where}, 0)


def test_claim_uses_the_cells_of_the_estimated_parameters() -> None:
    """A regime that does not estimate m0s has no m0s cell; one that estimates no parameter with a
    published value is not testable."""
    data = synthetic_regions(0.01, 0.15)
    for reg in data["tissue_blocks"]["regions"].values():
        for est in ("nlls", "crb", "mse"):
            reg[est].pop("m0s")
    out = claim_invivo(data, LIT, n_boot=100, seed=1)
    assert out["cells"] == ["WM/T1", "GM/T1"] and out["verdict"] == "held"
    for reg in data["tissue_blocks"]["regions"].values():
        for est in ("nlls", "crb", "mse"):
            reg[est].pop("T1")
    out = claim_invivo(data, LIT, n_boot=100, seed=1)
    assert out["verdict"] == "not testable" and "estimate none" in out["reason"]
