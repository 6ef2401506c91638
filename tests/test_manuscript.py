"""The manuscript stage: macros and generated LaTeX from a small fake summary (no LaTeX needed),
the macros the manuscript uses are all defined, and build_manuscript's message without latexmk."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path

import pytest
from workflow_helpers import REPO

from crbnn.common.logs import ScriptArgs

SCRIPTS = REPO / "workflow" / "scripts"
PRIORS = {
    "m0s": {"dist": "truncnormal", "mean": 0.15, "std": 0.15, "low": 0.0, "high": 0.35},
    "T1": {"dist": "uniform", "low": 0.4, "high": 2.5},
    "omega0": {"dist": "uniform", "low": -1.0, "high": 1.0, "units": "pi/TR"},
}
SUMMARY = {
    "config": {
        "sigma": 0.01, "M0_abs": 0.5, "n_train": 4_000_000, "n_val": 56320, "n_test": 32, "rank": 13,
        "n_pulses": 1142, "tr": 0.0035, "epochs": 800, "batch_size": 1024, "lr": 0.01, "network": "paper",
        "losses": ["mse", "crb"], "estimated": ["m0s", "T1", "T2f"], "nuisance": ["M0_re", "Rex"],
        "sequence_source": "public", "basis_source": "public", "train_sigma": 0.01, "train_m0_min": 0.1,
        "train_m0_max": 1.0, "nlls_grid_realizations": 2, "test_realizations": 20, "grids": {"m0s-T1": {"points": 16, "realizations": 4}},
        "priors": PRIORS, "regime": "estimated m0s, T1, T2f; unknown nuisance complex M0, omega0, B1",
        "ema_decay": 0.995, "snr_sweep_snrs": [10, 50], "snr_sweep_realizations": 20, "snr_sweep_nlls_samples": 32,
        "snr_sweep_nlls_realizations": 8, "snr_sweep_interval_percent": 95,
        "lr_step_epochs": 50, "lr_gamma": 0.5, "grad_clip_factor": 3.0, "weight_decay": 0.0, "normalization": "l2",
        "train_threads": 2, "device": "auto", "nlls_max_iter": 60, "nlls_ftol": 1e-5, "nlls_xtol": 1e-6,
        "nlls_fit": ["m0s", "T1", "T2f", "omega0", "B1"], "known": {"Rex": 13.6, "T2s": 1.25e-5},
        "bias_reduced": {"realizations": 8, "lam": 1.0, "delta": 1.0, "init_from_crb": True, "epochs": 40,
                         "lr": 0.0005, "lr_step_epochs": 15, "batch_size": 128},
    },
    "snr_sweep": {"crb": {"SNR10": {"mean": {"mean_loss": 0.9, "mean_loss_lo": 0.8, "mean_loss_hi": 1.0}},
                          "SNR50": {"mean": {"mean_loss": 1.1, "mean_loss_lo": 1.0, "mean_loss_hi": 1.2}}}},
    "networks": {
        "crb": {"crb_loss_mean": 1.05, "crb_loss": {"m0s": 1.01, "T1": 1.1, "T2f": 1.04}, "seconds_per_voxel": 2.0e-6},
        "mse": {"crb_loss_mean": 3.4, "crb_loss": {"m0s": 2.0, "T1": 5.0, "T2f": 3.2}},
    },
    "training": {"crb": {"epochs": 800, "wall_time_s": 86400.0}, "mse": {"epochs": 800, "wall_time_s": 80000.0}},
    "invivo": {
        "WM": {"n": 812,
               "nlls": {"m0s": {"mean": 0.2, "sd": 0.03, "difference": 0.0, "difference_se": 0.0},
                        "T2f": {"mean": 0.07, "sd": 0.01, "difference": 0.0, "difference_se": 0.0}, "negative_m0s": 0},
               "crb": {"m0s": {"mean": 0.17, "sd": 0.02, "difference": -0.03, "difference_se": 0.001},
                       "T2f": {"mean": 0.072, "sd": 0.01, "difference": 0.002, "difference_se": 0.0004}, "negative_m0s": 3}},
        "mask": {"n": 18951, "crb": {"negative_m0s": 40}},
    },
}


@pytest.fixture
def macros(tmp_path: Path) -> dict[str, Path]:
    """Run write_macros.py (ScriptArgs stand-in) on the fake summary; return its outputs."""
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    out = {k: tmp_path / f"{k}.tex" for k in ("numbers", "grid_figures", "priors", "regions", "snr_table", "phantom_tables", "claims")}
    main = runpy.run_path(str(SCRIPTS / "write_macros.py"))["main"]
    main(ScriptArgs(
        input={"summary": str(tmp_path / "summary.json")},
        output={k: str(v) for k, v in out.items()},
        params={"title": "T", "authors": "A", "digits": 3, "grids": ["m0s-T1"], "quantities": ["bias", "std_ratio"]},
        # no network.json or phantom regions: their macros are dashes, the phantom tables empty
        log=[str(tmp_path / "log")],
    ))
    return out


def defined(text: str) -> dict[str, str]:
    return dict(re.findall(r"\\newcommand\{\\([A-Za-z]+)\}\{(.*)\}$", text, flags=re.M))


def test_macros_file(macros: dict[str, Path]) -> None:
    d = defined(macros["numbers"].read_text())
    # measured numbers keep their significant digits (1.00, not 1); configured ones are as written
    assert d["CRBLossCRB"] == r"\num{1.05}" and d["CRBLossMSE"] == r"\num{3.40}"
    assert d["ConfigNTrain"] == r"\num{4000000}" and d["ConfigSigma"] == r"\num{0.01}"
    assert d["TrainTimeCRB"] == r"\num{8.64e4}"
    assert d["SecondsPerVoxelCRB"] == r"\num{2.00e-6}"
    assert d["CRBLossBiasReduced"] == "--"  # not trained: a dash, not a LaTeX error
    assert d["ManuscriptTitle"] == "T"
    assert d["ConfigSnrSweepSnrs"] == r"\numlist{10;50}"
    assert d["NetWidths"] == "--" and d["InvivoRepository"] == r"\nolinkurl{quentin-duchemin/MRF-CRBLoss}"


def test_generated_figures_and_priors(macros: dict[str, Path]) -> None:
    figs = macros["grid_figures"].read_text()
    assert "figures/grid_maps_bias_m0s-T1.pdf" in figs and "figures/grid_maps_std_ratio_m0s-T1.pdf" in figs
    priors = macros["priors"].read_text()
    assert priors.count(r"\\") == 1 + len(PRIORS) and r"\pi/T_R" in priors
    snr = macros["snr_table"].read_text()
    assert r"10 & \num{0.900} [\num{0.800}, \num{1.00}]" in snr and r"50 & \num{1.10} [\num{1.00}, \num{1.20}]" in snr
    assert r"$T_1$ & \si{\second} & uniform & U(\num{0.4}, \num{2.5})" in priors  # symbols, siunitx units


def test_invivo_region_table(macros: dict[str, Path]) -> None:
    """The region table has one row per estimator, T2f in ms, differences to NLLS with their SE and
    the count of negative m0s; without an invivo section it says so instead of failing."""
    from crbnn.report.tables import latex_region_table

    table = macros["regions"].read_text()
    rows = [ln for ln in table.splitlines() if ln.startswith(("WM", " & CRB"))]
    assert len(rows) == 2 and rows[0].startswith(r"WM (\num{812}) & NLLS")
    assert r"\num{-0.0300} $\pm$ \num{0.00100}" in rows[1] and r"\num{72.0} $\pm$ \num{10.0}" in rows[1]
    assert rows[1].endswith(r"& \num{3} \\")
    assert "not computed" in latex_region_table({"config": {}})
    assert defined(macros["numbers"].read_text())["InvivoMaskCRBNegativeMZeros"] == r"\num{40}"


def test_region_tables_have_a_column_per_estimated_parameter() -> None:
    """Another regime (m0s and T1 estimated): the in vivo and phantom tables show those two, no T2f."""
    from crbnn.report.tables import latex_phantom_tables, latex_region_table

    st = {"mean": 1.0, "sd": 0.1, "difference": 0.0, "difference_se": 0.01}
    summary = {"config": {"estimated": ["m0s", "T1"]},
               "invivo": {"WM": {"n": 9, "nlls": {"m0s": st, "T1": st, "negative_m0s": 0}}}}
    table = latex_region_table(summary)
    assert table.startswith(r"\begin{tabular}{llcccc" + "c}") and "$T_1$" in table and "T_2^f" not in table
    rows = [{"estimator": "nlls", "region": "vial1", "parameter": p, "n": 9, "mean": 1.0, "sd": 0.1, "truth": 1.0}
            for p in ("T1", "m0s")]
    phantom = latex_phantom_tables({"vials": rows})
    assert r"\begin{tabular}{llcc}" in phantom and phantom.index("m_0^s") < phantom.index("T_1")
    assert "T_2^f" not in phantom


def test_manuscript_uses_only_defined_macros(macros: dict[str, Path]) -> None:
    """Every custom macro in manuscript.tex is defined by the macros file of the fake summary, and the
    manuscript types no digits of results outside its LaTeX structure (numbers come from macros)."""
    tex = (REPO / "manuscript" / "manuscript.tex").read_text()
    d = defined(macros["numbers"].read_text())
    used = set(re.findall(r"\\((?:Config|CRBLoss|TrainTime|SecondsPerVoxel|Manuscript|Networks|Grids|Training|Claim|Regime|Sweep|SelectedEpoch|NLLSEff|Net|Hardware|Seq|Basis|Invivo|Known|TRQuantity|InputNormalization|FineTuneStart|SEBlockVoxels|PaperSNR|GridFigureRefs|Headline|Final)[A-Za-z]*)", tex))
    provided = set(re.findall(r"\\providecommand\{\\([A-Za-z]+)\}", tex))
    assert used and used <= set(d) | provided, sorted(used - set(d) - provided)
    body = tex.split(r"\begin{document}")[1]
    body = re.sub(r"%.*", "", body)
    body = re.sub(r"\\begin\{align\}.*?\\end\{align\}", "", body, flags=re.S)  # the loss equations
    body = re.sub(r"\\(?:cite[pt]?|ref|label|includegraphics|input|resizebox|bibliography\w*)(\[[^]]*\])?\{[^}]*\}", "", body)
    body = re.sub(r"\$[^$]*\$", "", body)  # symbols such as R_{1f}, M_0 = 1
    typed = [n for n in re.findall(r"\d+(?:\.\d+)?", body.replace("0.8\\linewidth", "")) if n != "1"]
    assert not typed, f"numbers typed in the manuscript: {typed} (1, the efficient estimator's loss, is allowed)"
    for name in ("learning_curves", "error_distribution"):
        assert f"figures/{name}.pdf" in tex


def test_build_manuscript_without_latexmk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no latexmk
    main = runpy.run_path(str(SCRIPTS / "build_manuscript.py"))["main"]
    with pytest.raises(SystemExit, match="latexmk not found"):
        main(ScriptArgs(input={}, output={"pdf": str(tmp_path / "m.pdf")}, params={"engine": "pdflatex"},
                        log=[str(tmp_path / "log")]))


# ------------------------------------------------------- is the PDF a target? (manuscript.enabled)


def test_decide_pdf_modes() -> None:
    from crbnn.report.manuscript import ManuscriptError, decide_pdf

    none = lambda exe: None  # noqa: E731
    every = lambda exe: f"/usr/bin/{exe}"  # noqa: E731
    assert decide_pdf("auto", "pdflatex", which=every).build
    assert decide_pdf(True, "pdflatex", which=every).build
    assert not decide_pdf(False, "pdflatex", which=none).build and decide_pdf(False, "pdflatex", which=none).warning is None
    skipped = decide_pdf("auto", "pdflatex", which=none)
    assert not skipped.build and "\n" not in skipped.warning
    assert "apt-get install --no-install-recommends latexmk texlive-latex-base" in skipped.warning
    assert "latexmk, pdflatex not found" in skipped.warning
    # latexmk present but not the engine
    assert not decide_pdf("auto", "xelatex", which=lambda exe: "/x" if exe == "latexmk" else None).build
    with pytest.raises(ManuscriptError, match="manuscript.enabled is true but latexmk, pdflatex not found"):
        decide_pdf(True, "pdflatex", which=none)
    # tectonic: from PATH, or from envs/manuscript.yaml with --sdm conda
    assert "conda install -c conda-forge tectonic=" in decide_pdf("auto", "tectonic", which=none).warning
    assert decide_pdf(True, "tectonic", conda=True, which=none).build
    assert decide_pdf("auto", "tectonic", which=lambda exe: "/opt/tectonic" if exe == "tectonic" else None).build
    with pytest.raises(ManuscriptError, match="auto, true or false"):
        decide_pdf("maybe", "pdflatex", which=every)


def test_texlive_package_list_is_the_makefiles() -> None:
    from crbnn.report.manuscript import TEXLIVE_PACKAGES

    make = (REPO / "Makefile").read_text()
    m = re.search(r"^TEXLIVE_PACKAGES := (.*)$", make, flags=re.M)
    assert m and tuple(m.group(1).split()) == TEXLIVE_PACKAGES
    assert "$(TEXLIVE_PACKAGES)" in make and "make --no-print-directory tex" in (REPO / ".ci" / "run").read_text()


def test_engine_command_tectonic_and_latexmk() -> None:
    from crbnn.report.manuscript import engine_command

    assert engine_command("pdflatex", "m.tex", "latexmk")[:2] == ["latexmk", "-pdf"]
    assert engine_command("tectonic", "m.tex")[0] == "tectonic"


TEX_PROGRAMS = {"latexmk", "pdflatex", "lualatex", "xelatex", "tectonic"}


@pytest.fixture(scope="module")
def no_tex_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH with every program of this one (links) except the TeX engines."""
    import os
    import shutil

    bin_dir = tmp_path_factory.mktemp("no_tex_bin")
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not d or not Path(d).is_dir():
            continue
        for exe in Path(d).iterdir():
            link = bin_dir / exe.name
            if exe.name in TEX_PROGRAMS or link.exists() or link.is_symlink():
                continue
            if exe.is_file() and os.access(exe, os.X_OK):
                link.symlink_to(exe)
    assert all(shutil.which(p, path=str(bin_dir)) is None for p in TEX_PROGRAMS)
    return str(bin_dir)


def test_workflow_without_tex_skips_only_the_pdf(tmp_path: Path, no_tex_path: str, data_dir: Path) -> None:
    """manuscript.enabled: auto without TeX: no build_manuscript job, a run ends with one warning line."""
    from workflow_helpers import run_snakemake

    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(f"inputs:\n  data_dir: {str(data_dir)!r}\n")
    cfg = ["--configfile", str(REPO / "config" / "test.yaml"), str(overlay)]
    dry = run_snakemake(tmp_path, "-n", *cfg, timeout=300, env={"PATH": no_tex_path})
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-3000:]
    assert "summarize" in out and "build_manuscript" not in out
    run = run_snakemake(tmp_path, "--cores", "1", "resources/sequence.h5", *cfg, timeout=300, env={"PATH": no_tex_path})
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    warnings = [line for line in out.splitlines() if "manuscript PDF skipped" in line]
    assert len(warnings) == 1 and "apt-get install" in warnings[0], out[-3000:]


def test_workflow_requires_tex_when_enabled_true(tmp_path: Path, no_tex_path: str) -> None:
    from workflow_helpers import run_snakemake

    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("manuscript:\n  enabled: true\n")
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "test.yaml"), str(overlay),
                         timeout=300, env={"PATH": no_tex_path})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "manuscript.enabled is true but latexmk, pdflatex not found" in out, out[-3000:]


@pytest.mark.skipif(__import__("shutil").which("latexmk") is None or __import__("shutil").which("pdflatex") is None,
                    reason="needs TeX Live (make tex)")
def test_manuscript_builds_without_undefined_macros_or_references(macros: dict[str, Path], tmp_path: Path) -> None:
    """The manuscript with the macros and tables of the fake summary (placeholder figures) builds, its
    log names no undefined macro, reference or citation, and every figure and table label is cited."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crbnn.report.manuscript import engine_command, latex_log_problems, unreferenced_labels

    build = tmp_path / "build"
    (build / "figures").mkdir(parents=True)
    for src in [*(REPO / "manuscript").glob("*.tex"), REPO / "manuscript" / "references.bib", *macros.values()]:
        (build / src.name).write_text(src.read_text())
    (build / "invivo_regions.tex").write_text(macros["regions"].read_text())
    (build / "summary_table.tex").write_text("\\begin{tabular}{l}x\\\\\\end{tabular}\n")
    fig = plt.figure(figsize=(1, 1))
    names = ["learning_curves", "error_distribution", "snr_sweep", "grid_maps_bias_m0s-T1", "grid_maps_std_ratio_m0s-T1"]
    for name in names:
        fig.savefig(build / "figures" / f"{name}.pdf")
    plt.close(fig)
    proc = __import__("subprocess").run(engine_command("pdflatex", "manuscript.tex"), cwd=build, capture_output=True,
                                        text=True, timeout=300)
    log = (build / "manuscript.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert not latex_log_problems(log)
    sources = [p.read_text() for p in build.glob("*.tex")]
    assert not unreferenced_labels(sources)
