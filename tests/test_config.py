"""Config files validate against workflow/schemas (crbnn.config.checks.validate_config, what common.smk
runs at parse time); bad values fail at parse time naming the key; the settings the rules derive
from a config (crbnn.config.settings) are what the jobs need."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config
from workflow_helpers import REPO, run_snakemake

from crbnn.common.seeds import derive_seed
from crbnn.config import settings
from crbnn.config.checks import ConfigError, prior_support, validate_config
from crbnn.report.latex import flatten, macro_name

SCHEMAS = REPO / "workflow" / "schemas"
CONFIGS = ["config.yaml", "test.yaml", "paper.yaml"]


def load(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


def validated(*names: str) -> tuple[dict, float | None]:
    """The config files ``names`` merged as ``--configfile`` merges them, validated; (config, TR)."""
    cfg: dict = {}
    for name in names:
        update_config(cfg, load(name))
    return cfg, validate_config(cfg, SCHEMAS, REPO)


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_validate(name: str) -> None:
    cfg = load(name)
    assert validate_config(cfg, SCHEMAS, REPO) == pytest.approx(3.5e-3)  # the public train's TR
    assert cfg["basis"]["rank"] == 13 and cfg["priors"]["constraints"] == ["T2f < T1"]


def test_defaults_fill_an_empty_config() -> None:
    cfg: dict = {}
    validate_config(cfg, SCHEMAS, REPO)
    assert cfg["sequence"]["tr"] is None and cfg["priors"]["parameters"]["m0s"]["dist"] == "truncnormal"
    assert cfg["simulate"]["tables"]["train"]["shards"] >= 1


def test_every_key_documented() -> None:
    def walk(node: dict, where: str) -> None:
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{where}.{key} lacks a description"
            walk(sub, f"{where}.{key}")
        if node.get("type") == "object" and "properties" in node and where.count(".") <= 1:
            assert node.get("additionalProperties") is False, f"{where} allows unknown keys"

    for schema in SCHEMAS.glob("*.schema.yaml"):
        walk(yaml.safe_load(schema.read_text()), schema.name)


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"sequence": {"tr": "fast"}}, "tr"),
        ({"basis": {"rank": 0}}, "rank"),
        ({"priors": {"parameters": {"B1": {"dist": "normal"}}}}, "dist"),
        ({"simulate": {"tables": {"train": {"n": 10, "shards": 1, "extra": 1}}}}, "extra"),
        ({"no_such_section": {}}, "no_such_section"),
    ],
)
def test_bad_values_fail(patch: dict, key: str) -> None:
    cfg = load("test.yaml")
    for section, value in patch.items():
        if isinstance(value, dict) and section in cfg:
            cfg[section] = {**cfg[section], **value}
        else:
            cfg[section] = value
    with pytest.raises(ConfigError, match=key):
        validate_config(copy.deepcopy(cfg), SCHEMAS, REPO)


def test_dry_run_rejects_out_of_range(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("basis:\n  rank: 0\n")
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "test.yaml"), str(bad), timeout=300)
    assert proc.returncode != 0
    assert "basis.rank" in proc.stdout + proc.stderr and "minimum" in proc.stdout + proc.stderr


def test_dry_run_rejects_wrong_type(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("simulate:\n  seed: twelve\n")
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "test.yaml"), str(bad), timeout=300)
    assert proc.returncode != 0
    assert "simulate.seed" in proc.stdout + proc.stderr


# ------------------------------------------------------------ settings derived from a config
@pytest.fixture(scope="module")
def default() -> tuple[dict, float | None]:
    """config/config.yaml, validated (defaults filled in), and its TR."""
    return validated("config.yaml")


@pytest.fixture(scope="module")
def nine_unknown() -> tuple[dict, float | None]:
    """The nine-unknown overlay on config/config.yaml, validated, and its TR."""
    return validated("config.yaml", "full-nuisance.yaml")


def test_nlls_solver_settings_drop_the_grid_subset(default) -> None:
    cfg, _ = default
    solver = settings.nlls_solver_settings(cfg)
    assert "grid_realizations" not in solver and "grid_stride" not in solver
    # the solver settings of config/config.yaml, written out (the keys the fits read, values as in the file)
    assert set(solver) == {"fit", "nominal", "bounds", "dictionary", "max_iter", "ftol", "xtol", "batch_size", "threads",
                           "starts", "distinct_starts", "restart_above"}
    assert (solver["starts"], solver["distinct_starts"], solver["restart_above"]) == (2, ["omega0", "B1"], 1.1)
    assert solver["fit"] == ["m0s", "T1", "T2f", "omega0", "B1"] and solver["bounds"] == {}
    assert (solver["max_iter"], solver["ftol"], solver["xtol"], solver["batch_size"]) == (60, 1e-5, 1e-6, 512)
    assert solver["nominal"] == {"m0s": 0.15, "T1": 1.2, "T2f": 0.07, "Rex": 13.6, "T2s": 1.25e-5, "omega0": 0.0, "B1": 1.0}
    assert solver["dictionary"]["T1"] == {"start": 0.5, "stop": 2.5, "num": 8, "spacing": "log"}
    # changing the grid subset leaves the settings of the image, test-set and sweep fits as they were
    other = copy.deepcopy(cfg)
    other["nlls"].update(grid_realizations=2, grid_stride=4)
    assert repr(settings.nlls_solver_settings(other)) == repr(solver)


@pytest.mark.parametrize("regime", ["default", "nine_unknown"])
def test_nlls_bounds_are_the_priors_support(regime: str, request: pytest.FixtureRequest) -> None:
    cfg, tr = request.getfixturevalue(regime)
    bounds = settings.nlls_bounds(cfg, tr)
    assert list(bounds) == cfg["nlls"]["fit"]  # every fitted parameter, in nlls.fit order
    priors = cfg["priors"]["parameters"]
    for p, (lo, hi) in bounds.items():
        assert (lo, hi) == pytest.approx(prior_support(priors[p], p, tr)), p
    assert bounds["omega0"][1] == pytest.approx(math.pi / tr)  # omega0 prior in units of pi/TR
    assert bounds["T2f"] == pytest.approx((0.02, 0.25))  # reciprocal prior of R2f in 4-50 1/s


def test_nlls_bounds_overrides_win(default) -> None:
    cfg, tr = copy.deepcopy(default[0]), default[1]
    cfg["nlls"]["bounds"] = {"T1": [0.5, 2.0]}
    bounds = settings.nlls_bounds(cfg, tr)
    assert bounds["T1"] == (0.5, 2.0) and bounds["m0s"] == settings.nlls_bounds(default[0], tr)["m0s"]


def test_fitted_parameter_without_bounds_fails_at_parse_time() -> None:
    cfg = load("config.yaml")
    cfg["priors"]["parameters"]["B1"] = {"dist": "fixed", "value": 1.0}  # unknown, fitted, but no support
    with pytest.raises(ConfigError, match=r"^nlls\.bounds: no NLLS bounds for 'B1'.*set nlls\.bounds\.B1"):
        validate_config(cfg, SCHEMAS, REPO)
    cfg["nlls"]["bounds"] = {"B1": [0.7, 1.3]}
    validate_config(cfg, SCHEMAS, REPO)


def test_nlls_nominal_and_model_meta(default, nine_unknown) -> None:
    cfg, tr = default
    meta = settings.nlls_model_meta(cfg, tr)
    assert json.loads(json.dumps(meta)) == meta  # plain JSON: lists, floats, strings
    assert meta["nominal"] == {**cfg["nlls"]["nominal"], "Rex": 13.6, "T2s": 1.25e-5}
    assert set(meta["nominal"]) == {"m0s", "T1", "T2f", "Rex", "T2s", "omega0", "B1"}
    assert meta["bounds"] == {p: list(b) for p, b in settings.nlls_bounds(cfg, tr).items()}
    cfg9, tr9 = nine_unknown
    assert {"Rex", "T2s"} <= set(settings.nlls_model_meta(cfg9, tr9)["bounds"])  # fitted in that regime


def test_known_tissue_values(default, nine_unknown) -> None:
    assert settings.known_tissue_values(default[0]) == {"Rex": 13.6, "T2s": 1.25e-5}
    assert settings.known_tissue_values(nine_unknown[0]) == {}


def test_gpu_request() -> None:
    assert settings.gpu_request({"compute": {"device": "cpu", "gpus": 2}}) == 0
    assert settings.gpu_request({"compute": {"device": "cuda", "gpus": 2}}) == 2
    assert settings.gpu_request({"compute": {"device": "auto", "gpus": 1}}) == 1


def test_tables_and_seeds(default) -> None:
    cfg, _ = default
    tables = cfg["simulate"]["tables"]
    assert tuple(tables) == settings.SAMPLED_TABLES == ("train", "val", "dev", "final")
    for name in settings.SAMPLED_TABLES:
        assert settings.table_size(cfg, name) == tables[name]["n"]
        assert settings.n_shards(cfg, name) == tables[name]["shards"]
        assert settings.table_seed(cfg, name) == derive_seed(cfg["simulate"]["seed"], name)
    assert settings.n_shards(cfg, "grid_m0s-T1") == cfg["simulate"]["grid_shards"]
    assert settings.basis_seed(cfg) == derive_seed(cfg["simulate"]["seed"], "basis")
    seeds = {settings.table_seed(cfg, n) for n in settings.SAMPLED_TABLES} | {settings.basis_seed(cfg)}
    assert len(seeds) == 5  # independent streams: the final test set shares no draw with the dev set
    assert settings.sweep_seed(cfg, "final") != settings.sweep_seed(cfg, "dev")
    grids = list(cfg["grids"]["sets"])
    assert [settings.grid_seed(cfg, g) for g in grids] == [derive_seed(cfg["evaluate"]["seed"], f"grid_{g}") for g in grids]
    assert settings.evaluation_seed(cfg, "test_set") != settings.evaluation_seed(cfg, "snr_sweep")


def test_training_and_images_settings(default) -> None:
    cfg = copy.deepcopy(default[0])
    cfg["images"].update(estimators=["nlls", "mse", "crb"], invivo_voxels={"stride": 3, "box": None})
    cfg["train"]["losses"] = ["crb", "bias_reduced"]
    assert settings.image_networks(cfg) == ["crb"]  # networks that are not trained are not mapped
    assert settings.image_voxels(cfg, "invivo") == {"stride": 3, "box": None}
    assert settings.image_voxels(cfg, "vials") == cfg["images"]["phantom_voxels"]
    assert settings.maps_invivo_with_nlls(cfg)
    cfg["images"]["images"] = ["vials"]
    assert not settings.maps_invivo_with_nlls(cfg)
    cfg["train"]["bias_reduced"]["init_from_crb"] = True
    assert settings.fine_tunes_from_crb(cfg, "bias_reduced") and not settings.fine_tunes_from_crb(cfg, "crb")
    cfg["train"]["bias_reduced"]["init_from_crb"] = False
    assert not settings.fine_tunes_from_crb(cfg, "bias_reduced")


def test_summary_config_has_what_the_manuscript_reads(default) -> None:
    cfg, tr = default
    summary = settings.summary_config(cfg)
    assert json.loads(json.dumps(summary)) == summary
    assert summary["known"] == {"Rex": 13.6, "T2s": 1.25e-5} and summary["losses"] == cfg["train"]["losses"]
    assert summary["n_train"] == cfg["simulate"]["tables"]["train"]["n"]
    br = cfg["train"]["bias_reduced"]
    assert summary["bias_reduced"]["epochs"] == br["epochs"] and summary["bias_reduced"]["lam"] == br["lam"]
    assert summary["bias_reduced"]["batch_size"] == (br.get("batch_size") or cfg["train"]["optimizer"]["batch_size"])
    assert summary["grids"]["m0s-T1"]["points"] == math.prod(
        a["num"] for a in cfg["grids"]["sets"]["m0s-T1"]["axes"].values())
    # every \Config... macro of the manuscript comes from a key (rule summarize adds n_pulses and tr)
    section = {**summary, "n_pulses": 1142, "tr": tr}
    defined = {macro_name(*path) for path, _ in flatten({"config": section})}
    used = set()
    for tex in (REPO / "manuscript").glob("*.tex"):
        used |= set(re.findall(r"\\(Config[A-Za-z]+)", tex.read_text()))
    assert used and used <= defined, sorted(used - defined)


def test_rule_params_are_stable(default) -> None:
    """Rule params are provenance (Snakemake reruns a job when their repr changes): the same config,
    validated twice, gives the same values, and the values are plain JSON."""
    again, tr = validated("config.yaml")
    cfg, _ = default
    for f in (settings.nlls_solver_settings, settings.known_tissue_values, settings.summary_config):
        assert repr(f(cfg)) == repr(f(again)), f.__name__
        json.dumps(f(cfg))
    for g in (settings.nlls_bounds, settings.nlls_model_meta):
        assert repr(g(cfg, tr)) == repr(g(again, tr)), g.__name__
        json.dumps(g(cfg, tr))


NLLS_RULES = ["fit_nlls_grid", "evaluate_test_set", "evaluate_snr_sweep", "fit_image_nlls", "infer_image"]


def test_every_nlls_fit_gets_its_bounds_from_one_call() -> None:
    """The rules of every NLLS fit (and infer_image's clipping) pass ``bounds=nlls_bounds``
    (crbnn.config.settings.nlls_bounds); no workflow script derives bounds itself."""
    rules = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    for rule in NLLS_RULES:
        body = re.search(rf"^rule {rule}:\n(.*?)(?=^\S|\Z)", rules, re.S | re.M)
        assert body is not None and "bounds=nlls_bounds," in body.group(1), rule
    for script in (REPO / "workflow" / "scripts").glob("*.py"):
        assert "bounds_from_priors" not in script.read_text(), script.name
