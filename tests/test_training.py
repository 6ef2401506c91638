"""Training loop, checkpoint resume, model files and evaluation on a tiny linear toy data set."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from crbnn.evaluate.test_set import evaluate_model
from crbnn.learn.training_data import make_validation_set, read_training_data
from crbnn.learn.loop import TrainingError, init_model, train_network, validation_metrics
from crbnn.learn.model_file import load_model, predict, save_model
from crbnn.learn.train_settings import TrainSettings

torch.set_num_threads(1)

TISSUE = ["m0s", "T1", "T2f", "Rex", "T2s", "omega0", "B1"]
UNITS = ["1", "s", "s", "1/s", "s", "rad/s", "1"]
LO = np.array([0.0, 0.6, 0.03])
HI = np.array([0.3, 2.0, 0.15])


def make_toy_dataset(path: Path, n: int, seed: int, rank: int = 4, basis_sha: str = "b" * 64,
                     nan_row: int | None = None) -> None:
    """Documented data-set layout for a linear toy model c = b + A u, u = theta scaled to [-1, 1].

    The CRB includes the complex M0 as a nuisance (Fisher matrix of [c, i c, dc/dtheta] at M0 = 1).
    """
    model_rng = np.random.default_rng(7)  # the same model for every split
    b = model_rng.normal(size=rank) + 1j * model_rng.normal(size=rank)
    a = 0.3 * (model_rng.normal(size=(rank, 3)) + 1j * model_rng.normal(size=(rank, 3)))
    rng = np.random.default_rng(seed)
    params = np.column_stack([rng.uniform(LO, HI, size=(n, 3)), rng.uniform(1, 2, size=(n, 4))])
    u = 2 * (params[:, :3] - LO) / (HI - LO) - 1
    coeff = b + u @ a.T
    dtheta = a * (2 / (HI - LO))  # [R, 3]
    crb = np.empty((n, 3))
    for i in range(n):
        j = np.column_stack([coeff[i], 1j * coeff[i], dtheta])
        crb[i] = np.diag(np.linalg.inv((j.conj().T @ j).real))[2:]
    if nan_row is not None:
        coeff[nan_row, 1] = np.nan
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("parameters", data=params)
        ds.attrs["names"] = TISSUE
        ds.attrs["units"] = UNITS
        f.create_dataset("coefficients", data=coeff.astype(np.complex128))
        ds = f.create_dataset("crb", data=crb)
        ds.attrs["names"] = ["m0s", "T1", "T2f"]
        f.attrs.update({"sequence_sha256": "s" * 64, "basis_sha256": basis_sha, "rank": rank,
                        "estimated": ["m0s", "T1", "T2f"], "M0": 1.0, "sigma": 1.0})


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("toy")
    paths = {name: d / f"{name}.h5" for name in ("train", "val", "test")}
    for k, (name, n) in enumerate((("train", 1024), ("val", 256), ("test", 128))):
        make_toy_dataset(paths[name], n, seed=k)
    return paths


def settings(**kw: object) -> TrainSettings:
    base = {"epochs": 3, "batch_size": 64, "lr": 0.01, "lr_step_epochs": 2, "network": {"preset": "tiny"},
            "normalization": "first_coefficient", "checkpoint_every": 2, "seed": 5, "sigma": 0.01}
    base.update(kw)
    return TrainSettings.from_dict(base)


def test_read_training_data(toy: dict[str, Path]) -> None:
    d = read_training_data(toy["train"])
    assert len(d) == 1024 and d.rank == 4 and d.estimated == ["m0s", "T1", "T2f"]
    assert d.units == ["1", "s", "s"]
    assert d.coefficients.dtype == torch.complex64


def test_nan_in_inputs_is_a_clear_error(tmp_path: Path) -> None:
    make_toy_dataset(tmp_path / "bad.h5", 16, seed=0, nan_row=3)
    with pytest.raises(ValueError, match=r"coefficients contains 1 NaN/inf.*first rows \[3\]"):
        read_training_data(tmp_path / "bad.h5")


def test_nonfinite_loss_names_epoch_and_batch(toy: dict[str, Path]) -> None:
    train = read_training_data(toy["train"])
    train.crb[100] = 0.0  # division by zero in the crb loss, in whichever batch holds sample 100
    with pytest.raises(TrainingError, match=r"non-finite crb loss .* at epoch 1, batch \d+"):
        train_network(train, read_training_data(toy["val"]), settings(), "crb")


def test_training_lowers_validation_loss(toy: dict[str, Path]) -> None:
    train, val = read_training_data(toy["train"]), read_training_data(toy["val"])
    s = settings(epochs=4)
    before = validation_metrics(init_model(s, train), make_validation_set(val, s, torch.device("cpu")), val.estimated)
    model, history = train_network(train, val, s, "crb")
    assert len(history) == 4
    assert history[-1]["val_crb_mean"] < 0.5 * before["val_crb_mean"]
    assert {"epoch", "train_loss", "val_mse_T1", "val_crb_m0s", "val_crb_mean", "lr", "wall_time_s",
            "samples_per_s"} <= set(history[0])
    assert [h["lr"] for h in history] == [0.01, 0.01, 0.005, 0.005]


def test_resume_equals_uninterrupted(toy: dict[str, Path], tmp_path: Path) -> None:
    train, val = read_training_data(toy["train"]), read_training_data(toy["val"])
    s = settings(epochs=4, checkpoint_every=2, grad_clip_factor=1.5)  # clipping state is resumed too
    ref, ref_hist = train_network(train, val, s, "mse")

    class Killed(Exception):
        pass

    def kill_at_3(epoch: int) -> None:
        if epoch == 3:  # after epoch 3, whose checkpoint was not written: resume redoes it
            raise Killed

    with pytest.raises(Killed):
        train_network(train, val, s, "mse", checkpoint_dir=tmp_path, on_epoch_end=kill_at_3)
    assert (tmp_path / "last.pt").exists()
    resumed, hist = train_network(train, val, s, "mse", checkpoint_dir=tmp_path)
    for key, value in ref.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert [h["val_crb_mean"] for h in hist] == [h["val_crb_mean"] for h in ref_hist]
    # a checkpoint of other settings is ignored, not resumed
    other, _ = train_network(train, val, settings(epochs=4, checkpoint_every=2, seed=6), "mse", checkpoint_dir=tmp_path)
    assert not torch.equal(other.state_dict()["linears.0.weight"], ref.state_dict()["linears.0.weight"])


def test_save_load_predict_and_hash_check(toy: dict[str, Path], tmp_path: Path) -> None:
    train, val = read_training_data(toy["train"]), read_training_data(toy["val"])
    model, _ = train_network(train, val, settings(epochs=1), "crb")
    save_model(model, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt", expect_basis_sha256="b" * 64, expect_sequence_sha256="s" * 64)
    assert loaded.meta["estimated"] == ["m0s", "T1", "T2f"] and loaded.meta["units"] == ["1", "s", "s"]
    assert loaded.meta["loss"] == "crb" and loaded.meta["rank"] == 4
    c = val.coefficients[:10].numpy() * (0.3 * np.exp(1j))  # any M0
    est = predict(loaded, c)
    assert est.shape == (10, 3) and est.dtype == np.float64
    np.testing.assert_array_equal(est, predict(model, c))
    assert predict(loaded, c.reshape(2, 5, 4)).shape == (2, 5, 3)
    with pytest.raises(ValueError, match="trained for basis"):
        load_model(tmp_path / "model.pt", expect_basis_sha256="c" * 64)
    with pytest.raises(ValueError, match="NaN"):
        predict(loaded, np.full((2, 4), np.nan, complex))
    # evaluation on a test set of another basis is refused as well
    make_toy_dataset(tmp_path / "other.h5", 8, seed=9, basis_sha="c" * 64)
    with pytest.raises(ValueError, match="basis"):
        evaluate_model(loaded, read_training_data(tmp_path / "other.h5"))


def test_bias_reduced_train_loss_equals_the_hand_computed_loss(toy: dict[str, Path]) -> None:
    """Value oracle: one epoch of one batch reports the bias-reduced loss of the initial network on the
    batch's noisy inputs, recomputed here in NumPy from its definition (Mao et al.):
    mean over signals and parameters of (mean_k est - true)^2 / CRB + lam max(var_k est / CRB - delta, 0)."""
    from crbnn.common.seeds import derive_seed
    from crbnn.learn.training_data import draw_noisy, normalize_inputs

    train, val = read_training_data(toy["train"]).subset(48), read_training_data(toy["val"])
    k, lam, delta = 3, 0.7, 0.5
    s = settings(epochs=1, realizations=k, batch_size=64, lam=lam, delta=delta)
    _, hist = train_network(train, val, s, "bias_reduced")
    # the same batch: the loop's noise stream (perm, then noise), the initial weights, train-mode BatchNorm
    gen = torch.Generator().manual_seed(derive_seed(s.seed, "noise"))
    idx = torch.randperm(len(train), generator=gen)
    y, m2 = draw_noisy(train.coefficients[idx], gen, s.sigma, s.m0_range, k)
    model = init_model(s, train).train()
    with torch.no_grad():
        x = normalize_inputs(y, s.normalization)
        est = model(x.reshape(-1, x.shape[-1])).reshape(len(idx), k, -1).double().numpy()
    true = train.targets[idx].double().numpy()
    crb = train.crb[idx].double().numpy() * (s.sigma**2 / m2.double().numpy())[:, None]
    mean = est.sum(axis=1) / k
    var = ((est - mean[:, None, :]) ** 2).sum(axis=1) / (k - 1)
    expected = np.mean((mean - true) ** 2 / crb + lam * np.maximum(var / crb - delta, 0.0))
    assert hist[0]["train_loss"] == pytest.approx(expected, rel=1e-5)
    assert expected > 0


def test_bias_reduced_finetune_and_evaluate(toy: dict[str, Path]) -> None:
    train, val = read_training_data(toy["train"]), read_training_data(toy["val"])
    crb_model, _ = train_network(train, val, settings(epochs=2), "crb")
    s = settings(epochs=1, realizations=4, batch_size=32, lr=1e-3)
    model, hist = train_network(train, val, s, "bias_reduced", init_from=crb_model)
    assert model.meta["loss"] == "bias_reduced" and np.isfinite(hist[0]["train_loss"])
    metrics = evaluate_model(model, read_training_data(toy["test"]), realizations=5, seed=1)
    for key in ("crb_loss", "relative_rmse", "median_abs_bias_over_sqrt_crb", "rmse"):
        assert set(metrics[key]) == {"m0s", "T1", "T2f"}
    assert metrics["n_samples"] == 128 and metrics["seconds_per_voxel"] > 0
    assert np.isfinite(metrics["crb_loss_mean"])


def test_workflow_scripts_without_snakemake(toy: dict[str, Path], tmp_path: Path) -> None:
    """train_network.py and evaluate_network.py run with the ScriptArgs stand-in (scripts are thin: main(snakemake))."""
    import json
    import runpy

    from crbnn.common.logs import ScriptArgs
    from crbnn.learn.train_settings import settings_for_loss

    scripts = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
    cfg = {"seed": 1, "normalization": "l2", "checkpoint_every": 1, "network": {"preset": "tiny"},
           "optimizer": {"epochs": 2, "batch_size": 128}}
    nlls = {"nominal": {"m0s": 0.15, "T1": 1.2}, "bounds": {"m0s": [0.0, 0.35], "T1": [0.4, 2.5]}}  # nlls_model_meta
    out = tmp_path / "train_network" / "crb"
    train = runpy.run_path(str(scripts / "train_network.py"))["main"]
    train(ScriptArgs(input={"train": str(toy["train"]), "val": str(toy["val"])},
                     output={"model": str(out / "model.pt"), "history": str(out / "history.csv"),
                             "network": str(out / "network.json")},
                     params={"settings": settings_for_loss(cfg, "crb"), "device": "cpu", "nlls": nlls},
                     log=[str(tmp_path / "train.log")], wildcards={"loss": "crb"}))
    assert (out / "model.pt").exists() and (out / "checkpoints" / "last.pt").exists()  # kept (docstring)
    assert torch.load(out / "model.pt", weights_only=True)["meta"]["nlls"] == nlls  # for crbnn infer
    assert "samples/s" in (tmp_path / "train.log").read_text()
    assert len((out / "history.csv").read_text().splitlines()) == 3
    net = json.loads((out / "network.json").read_text())  # the manuscript's architecture and hardware
    assert net["device"]["type"] == "cpu" and net["n_weights"] > 0 and net["architecture"]["batchnorm"] is True
    evaluate = runpy.run_path(str(scripts / "evaluate_network.py"))["main"]
    evaluate(ScriptArgs(input={"model": str(out / "model.pt"), "test": str(toy["test"])},
                        output={"metrics": str(tmp_path / "crb.json")},
                        params={"realizations": 3, "seed": 3, "device": "cpu"}, log=[str(tmp_path / "ev.log")]))
    assert json.loads((tmp_path / "crb.json").read_text())["loss"] == "crb"


def test_saved_model_is_the_best_validated_average(toy: dict[str, Path]) -> None:
    """The returned network is the weight average of the epoch with the lowest validation loss,
    whatever the last epoch did; its validation loss is the one recorded for that epoch."""
    train, val = read_training_data(toy["train"]), read_training_data(toy["val"])
    s = settings(epochs=6, lr=0.05, ema_decay=0.5)
    model, history = train_network(train, val, s, "crb")
    losses = [h["val_loss"] for h in history]
    best = int(np.argmin(losses)) + 1
    assert model.meta["selected_epoch"] == best == history[-1]["best_epoch"]
    again = validation_metrics(model, make_validation_set(val, s, torch.device("cpu")), val.estimated)
    assert again["val_loss"] == pytest.approx(losses[best - 1], rel=1e-5)
    # the mse network selects on its own objective (mean squared error in physical units)
    _, hist_mse = train_network(train, val, settings(epochs=2), "mse")
    assert hist_mse[0]["val_loss"] == pytest.approx(np.mean([hist_mse[0][f"val_mse_{p}"] for p in val.estimated]))


def test_ema_warm_up_and_decay() -> None:
    from crbnn.learn.loop import _ema_average

    avg = _ema_average(0.99)
    one, zero = torch.ones(1), torch.zeros(1)
    # first update: weight (1 + 0) / (10 + 0) = 0.1 on the average, 0.9 on the new value
    assert float(avg(zero, one, torch.tensor(0))) == pytest.approx(0.9)
    # long after the warm-up the decay is the configured one
    assert float(avg(zero, one, torch.tensor(10_000))) == pytest.approx(0.01)
    # decay 0: the average is the current iterate
    assert float(_ema_average(0.0)(zero, one, torch.tensor(50))) == 1.0


def test_adaptive_clip_caps_outlier_gradients() -> None:
    from crbnn.learn.loop import CLIP_WINDOW, clip_adaptive

    lin = torch.nn.Linear(2, 1, bias=False)
    norms: list[float] = []
    for k in range(30):  # 30 steps with gradient norm 1 (no clipping during the first 20 steps)
        lin.weight.grad = torch.tensor([[0.6, 0.8]])
        assert clip_adaptive(lin, norms, 3.0) == pytest.approx(1.0)
    lin.weight.grad = torch.tensor([[60.0, 80.0]])  # an outlier batch: norm 100
    assert clip_adaptive(lin, norms, 3.0) == pytest.approx(100.0)
    assert float(lin.weight.grad.norm()) == pytest.approx(3.0, rel=1e-5)  # clipped to 3 x median
    lin.weight.grad = torch.tensor([[1.2, 1.6]])  # norm 2 < 3: untouched
    clip_adaptive(lin, norms, 3.0)
    assert float(lin.weight.grad.norm()) == pytest.approx(2.0)
    for _ in range(CLIP_WINDOW):
        clip_adaptive(lin, norms, 3.0)
    assert len(norms) == CLIP_WINDOW


def test_bias_reduced_network_is_selected_by_its_own_objective(toy: dict[str, Path]) -> None:
    """The bias-reduced network's saved epoch minimizes its own validation objective (bias^2/CRB plus
    the penalized variance over K draws per signal), not the one-draw CRB-normalized loss."""
    from crbnn.learn.losses import bias_reduced_loss

    train, val = read_training_data(toy["train"]), read_training_data(toy["val"])
    crb_model, _ = train_network(train, val, settings(epochs=1), "crb")
    s = settings(epochs=3, realizations=4, batch_size=32, lr=3e-3, lam=1.0, delta=1.0)
    model, hist = train_network(train, val, s, "bias_reduced", init_from=crb_model)
    objective = [h["val_bias_reduced"] for h in hist]
    assert all(h["val_loss"] == h["val_bias_reduced"] for h in hist)
    assert model.meta["selected_epoch"] == 1 + int(np.argmin(objective))
    # value oracle: the validation objective of the saved weights, recomputed by hand
    vs = make_validation_set(val, s, torch.device("cpu"), realizations=4)
    assert vs.x_multi is not None and tuple(vs.x_multi.shape[:2]) == (256, 4)
    with torch.no_grad():
        est = model(vs.x_multi.reshape(-1, vs.x_multi.shape[-1])).reshape(256, 4, 3)
    by_hand = float(bias_reduced_loss(est.double(), vs.targets.double(), vs.crb_multi.double()))
    assert by_hand == pytest.approx(min(objective), rel=1e-5)
    # the one-draw inputs are those of every other loss (the K draws come from a stream of their own)
    assert torch.equal(vs.x, make_validation_set(val, s, torch.device("cpu")).x)


def test_training_defaults_have_one_home() -> None:
    """TrainSettings has no defaults of its own: a partial dict is completed from
    workflow/schemas/train.schema.yaml, exactly as the workflow's schema validation completes the config."""
    import dataclasses

    from snakemake.utils import validate

    from crbnn.learn.train_settings import TRAIN_SCHEMA, settings_for_loss

    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               for f in dataclasses.fields(TrainSettings))
    section: dict = {}
    validate(section, str(TRAIN_SCHEMA), set_default=True)  # what validate_config does to an empty train section
    validated = settings_for_loss(section, "crb")
    validated.update({k: section["bias_reduced"][k] for k in ("realizations", "lam", "delta")})
    assert TrainSettings.from_dict({}) == TrainSettings.from_dict(validated)
    assert TrainSettings.from_dict({}).epochs == section["optimizer"]["epochs"]


def test_log_uniform_m0_spreads_the_snr_evenly_over_log_snr() -> None:
    """train.noise.m0_distribution: 'log_uniform' gives every decade of SNR the same share of the
    training signals (uniform |M0| gives SNR 10-31.6 only a quarter), keeps |M0| in range and the phase,
    and 'uniform' (the default) draws exactly what the loop drew before the option existed."""
    from crbnn.learn.training_data import draw_noisy, log_uniform_magnitude
    from crbnn.physics.noise import add_noise, draw_m0

    c = torch.ones(200000, 2, dtype=torch.complex64)
    _, m2_log = draw_noisy(c, torch.Generator().manual_seed(3), 0.01, (0.1, 1.0), distribution="log_uniform")
    _, m2_uni = draw_noisy(c, torch.Generator().manual_seed(3), 0.01, (0.1, 1.0))
    m_log, m_uni = m2_log.sqrt(), m2_uni.sqrt()
    below = 10 ** -0.5  # |M0| = 0.316: SNR 31.6, the middle of the log range
    assert float((m_log < below).double().mean()) == pytest.approx(0.5, abs=0.01)
    assert float((m_uni < below).double().mean()) == pytest.approx((below - 0.1) / 0.9, abs=0.01)
    assert float(m_log.min()) >= 0.1 - 1e-6 and float(m_log.max()) <= 1.0 + 1e-6
    m0 = draw_m0(torch.Generator().manual_seed(1), (1000,), (0.1, 1.0))
    assert torch.allclose(torch.angle(log_uniform_magnitude(m0, (0.1, 1.0))), torch.angle(m0), atol=1e-5)
    # the default is the old draw: draw_m0 then add_noise from one generator
    g_old, g_new = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    coef = torch.randn(64, 3, dtype=torch.complex64)
    m0_old = draw_m0(g_old, (64,), (0.1, 1.0))
    y_old = add_noise(g_old, m0_old[:, None] * coef, 0.01)
    y_new, m2_new = draw_noisy(coef, g_new, 0.01, (0.1, 1.0))
    assert torch.equal(y_old, y_new) and torch.equal(m0_old.abs() ** 2, m2_new)
    with pytest.raises(ValueError, match="log_uniform"):
        draw_noisy(coef, g_new, 0.01, (0.1, 1.0), distribution="loguniform")


def test_m0_distribution_setting(toy: dict[str, Path]) -> None:
    """The option flows from the config section into TrainSettings and the validation noise; a bad value
    is rejected by TrainSettings and by the schema."""
    from snakemake.utils import validate

    from crbnn.learn.train_settings import TRAIN_SCHEMA, settings_for_loss

    assert TrainSettings.from_dict({}).m0_distribution == "uniform"
    flat = settings_for_loss({"noise": {"m0_distribution": "log_uniform"}}, "crb")
    assert flat["m0_distribution"] == "log_uniform"
    with pytest.raises(ValueError, match="m0_distribution"):
        settings(m0_distribution="normal")
    with pytest.raises(Exception, match="normal"):
        validate({"noise": {"m0_distribution": "normal"}}, str(TRAIN_SCHEMA), set_default=True)
    val = read_training_data(toy["val"])
    uni = make_validation_set(val, settings(), torch.device("cpu"))
    log = make_validation_set(val, settings(m0_distribution="log_uniform"), torch.device("cpu"))
    # same random numbers, smaller |M0| (larger scaled CRB) for log-uniform where u is inside (0, 1)
    ratio = log.crb[:, 0] / uni.crb[:, 0]
    assert bool((ratio >= 1 - 1e-5).all()) and float(ratio.max()) > 2
    model, hist = train_network(read_training_data(toy["train"]), val, settings(m0_distribution="log_uniform"), "crb")
    assert model.meta["settings"]["m0_distribution"] == "log_uniform" and len(hist) == 3
