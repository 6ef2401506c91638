"""The library keeps one home per concept, and docs/architecture.md shows every module of it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from workflow_helpers import REPO

SRC = REPO / "src" / "crbnn"
SUBPACKAGES = ("common", "config", "physics", "data", "learn", "estimate", "evaluate", "images", "report")


def modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_lives_in_a_stage_subpackage() -> None:
    top = {p.name for p in SRC.glob("*.py")}
    # the command line (crbnn infer) is the one module above the stages: it calls several of them
    assert top == {"__init__.py", "__main__.py", "cli.py"}, f"modules outside the subpackages: {sorted(top)}"
    assert {p.name for p in SRC.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(SUBPACKAGES)
    for pkg in SUBPACKAGES:
        init = SRC / pkg / "__init__.py"
        assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), f"{pkg}: no docstring"


def architecture_tree() -> dict[str, set[str]]:
    """Module names per subpackage in the package tree of docs/architecture.md."""
    text = (REPO / "docs" / "architecture.md").read_text().split("## The library next to the stages")[1]
    shown: dict[str, set[str]] = {}
    pkg = None
    for line in text.split("```")[1].splitlines():
        m = re.search(r"\b(" + "|".join(SUBPACKAGES) + r")/", line)
        pkg = m.group(1) if m else pkg
        if pkg is not None:
            shown.setdefault(pkg, set()).update(re.findall(r"([\w*]+)\.py", line))
    return shown


def test_architecture_doc_names_the_command_line() -> None:
    tree = (REPO / "docs" / "architecture.md").read_text().split("## The library next to the stages")[1].split("```")[1]
    top = tree.split("common/")[0]  # the lines above the first subpackage: top-level modules
    assert re.search(r"\bcli\.py\b", top), "docs/architecture.md: the package tree does not show cli.py at the top"
    assert "crbnn.cli" in (REPO / "README.md").read_text()


def test_architecture_doc_names_every_module() -> None:
    shown = architecture_tree()
    for path in modules():
        if path.name == "__init__.py" or path.parent == SRC:
            continue
        pkg, stem = path.parent.name, path.stem
        names = shown.get(pkg, set())
        named = stem in names or (stem.startswith("expm") and "expm*" in names)
        assert named, f"docs/architecture.md: the package tree does not show {pkg}/{path.name} under {pkg}/"


def definitions() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in modules():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                out.setdefault(node.name, []).append(str(path.relative_to(SRC)))
    return out


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("derive_seed", "common/seeds.py"),
        ("resolve_device", "common/device.py"),
        ("atomic_write", "common/io.py"),
        ("units_of", "common/parameters.py"),
        ("draw_m0", "physics/noise.py"),
        ("add_noise", "physics/noise.py"),
        ("compress", "data/basis.py"),
        ("validate_config", "config/checks.py"),
        ("nlls_bounds", "config/settings.py"),
    ],
)
def test_one_definition_of_each_shared_concept(name: str, home: str) -> None:
    assert definitions().get(name) == [home]


def test_noise_is_drawn_only_by_the_noise_model() -> None:
    draw = re.compile(r"standard_normal\(|torch\.randn\(|\.normal\(")
    for path in modules():
        lines = [ln for ln in path.read_text().splitlines() if draw.search(ln) and ">>>" not in ln]
        if path.relative_to(SRC).as_posix() != "physics/noise.py":
            assert not lines, f"{path.relative_to(SRC)} draws Gaussian numbers itself: {lines[0].strip()}"


def test_units_are_written_in_one_table() -> None:
    literal = re.compile(r"""["']omega0["']\s*:\s*["']rad/s["']""")
    hits = [str(p.relative_to(SRC)) for p in modules() if literal.search(p.read_text())]
    assert hits == ["common/parameters.py"]


#: A parameter name mapped to a unit, alone or after a scale (``"T2s": "us"``, ``"T2s": (1e6, "us")``).
UNIT_ENTRY = re.compile(r"""["'](m0s|T1|T2f|Rex|T2s|omega0|B1|R1f|R1s|R2f)["']\s*:\s*\(?\s*(?:[-+.\deE]+\s*,\s*)?"""
                        r"""["'](s|ms|us|µs|1/s|rad/s)["']""")


def test_no_second_unit_table() -> None:
    """Units and display units of any parameter (SI or shown, with or without a scale) live in
    common/parameters.py only; a second table elsewhere (e.g. T2s in "us" beside "µs") fails."""
    hits = sorted({str(p.relative_to(SRC)) for p in modules() if UNIT_ENTRY.search(p.read_text())})
    assert hits == ["common/parameters.py"]
    assert UNIT_ENTRY.search('units = {"Rex": (1.0, "1/s"), "T2s": (1e6, "us")}')  # the copy this test was written for


def test_module_names_do_not_mislead() -> None:
    """A module's name says what it holds: no module shares its name with a subpackage (``learn/data.py``
    beside ``crbnn.data``), with a module of another subpackage (``learn/settings.py`` beside
    ``config/settings.py``) or differs from one only by a plural s (``data/grids.py`` / ``evaluate/grid.py``)."""
    stems: dict[str, str] = {}
    for path in modules():
        if path.name == "__init__.py" or path.parent == SRC:
            continue
        rel = str(path.relative_to(SRC))
        assert path.stem not in SUBPACKAGES, f"{rel}: named like the subpackage crbnn.{path.stem}"
        assert path.stem not in stems, f"{rel} and {stems.get(path.stem)}: one module name in two subpackages"
        stems[path.stem] = rel
    for stem, rel in stems.items():
        assert stem + "s" not in stems, f"{rel} and {stems.get(stem + 's')}: names that differ by a plural s"


def test_hashes_and_seeds_have_one_home() -> None:
    """Content hashes go through crbnn.common.io.sha256_arrays, seeds through crbnn.common.seeds."""
    for pattern, homes in ((r"hashlib\.sha256\(", {"common/io.py", "common/seeds.py"}),):
        hits = {str(p.relative_to(SRC)) for p in modules() if re.search(pattern, p.read_text())}
        assert hits <= homes, f"{pattern} outside {sorted(homes)}: {sorted(hits - homes)}"


def test_seed_splitting_has_one_home() -> None:
    hits = {str(p.relative_to(SRC)) for p in modules() if "SeedSequence(" in p.read_text()}
    assert hits == {"common/seeds.py"}, sorted(hits)


#: Parameter lists with one home (crbnn.common.parameters): the paper's estimated and nuisance
#: parameters, the tissue parameters and complex M0.  Everything else imports them, or reads the
#: regime from the config (``model.estimated``) or the model file (``meta["estimated"]``).
PARAMETER_LISTS = {
    ("m0s", "T1", "T2f"): "PAPER_ESTIMATED",
    ("M0_re", "M0_im", "omega0", "B1"): "PAPER_NUISANCE",
    ("m0s", "T1", "T2f", "Rex", "T2s", "omega0", "B1"): "TISSUE_PARAMETERS",
    ("M0_re", "M0_im"): "M0_PARAMETERS",
}
#: The same lists as written in a rule file or script (any quotes, brackets and spacing).
_Q = r"""\s*["'](?:{})["']\s*"""
LIST_LITERAL = re.compile(r"[\[(]" + ",".join(_Q.format(re.escape(p)) for p in ("m0s", "T1", "T2f")) + r"[,\])]")


def list_literals(source: str) -> list[tuple[int, str]]:
    """(line, home) of every tuple, list or set literal of strings in ``source`` that spells one of
    :data:`PARAMETER_LISTS` (code only: docstrings and comments are not literals)."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts:
            if all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
                names = tuple(e.value for e in node.elts)  # type: ignore[attr-defined]
                if names in PARAMETER_LISTS:
                    hits.append((node.lineno, PARAMETER_LISTS[names]))
    return hits


def test_parameter_lists_are_written_once() -> None:
    """``("m0s", "T1", "T2f")`` and the other regime lists appear as literals in
    common/parameters.py only (a second copy in the library, a rule file or a script fails)."""
    found = {}
    for path in modules():
        for line, home in list_literals(path.read_text()):
            found.setdefault(home, []).append(f"{path.relative_to(SRC)}:{line}")
    assert found.get("PAPER_ESTIMATED"), "crbnn.common.parameters.PAPER_ESTIMATED is gone"  # its home
    copies = {home: where for home, where in found.items()
              if len(where) > 1 or not where[0].startswith("common/parameters.py:")}
    assert not copies, f"parameter lists written outside crbnn.common.parameters (import them instead): {copies}"
    workflow_files = sorted((REPO / "workflow").rglob("*.smk")) + sorted((REPO / "workflow").rglob("*.py"))
    for path in workflow_files:
        code = "\n".join(ln.split("#")[0] for ln in path.read_text().splitlines())
        assert not LIST_LITERAL.search(code), (f"{path.relative_to(REPO)}: the estimated parameters written out; read "
                                               'config["model"]["estimated"] (or import crbnn.common.parameters)')
    # the copies these checks were written for
    assert list_literals('ESTIMATED: tuple[str, ...] = ("m0s", "T1", "T2f")') == [(1, "PAPER_ESTIMATED")]
    assert LIST_LITERAL.search("ESTIMATE_MAPS = ['m0s', 'T1', 'T2f']")


#: ``sigma**2 / ...`` or ``sigma * sigma / ...`` (any name starting with sigma, after an attribute
#: dot or inside ``float(...)``), in code normalized by :func:`compact_code`: the CRB scaling
#: sigma^2 / |M0|^2, whose one home is crbnn.physics.noise.crb_scale.  ``x / sigma**2`` (the Fisher
#: matrix) is not it.
CRB_SCALING = re.compile(r"\bsigma\w*\)?(?:\*\*2|\*[\w.]*sigma\w*)/")


def compact_code(source: str) -> str:
    """``source`` without comments and string literals (docstrings, doctests), and without blanks
    except one between two names or numbers (``return sigma**2/x``)."""
    import io
    import tokenize

    out: list[str] = []
    prev = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.STRING, tokenize.NL, tokenize.INDENT, tokenize.DEDENT):
            continue
        if tok.type == tokenize.NEWLINE:
            out.append("\n")
            prev = None
            continue
        if prev in (tokenize.NAME, tokenize.NUMBER) and tok.type in (tokenize.NAME, tokenize.NUMBER):
            out.append(" ")
        out.append(tok.string)
        prev = tok.type
    return "".join(out)


def test_crb_scaling_is_written_once() -> None:
    """sigma^2 / |M0|^2 is computed by crbnn.physics.noise.crb_scale only; an inline copy elsewhere fails."""
    hits = sorted(str(p.relative_to(SRC)) for p in modules() if CRB_SCALING.search(compact_code(p.read_text())))
    assert hits == ["physics/noise.py"], f"inline sigma^2 / |M0|^2 outside crbnn.physics.noise.crb_scale: {hits}"
    # the copies this test was written for
    for copy in ("crb = data.crb * (settings.sigma**2 / m2)[:, None]",
                 "scale = float(sigma) ** 2 / np.maximum(np.abs(m0) ** 2, tiny)",
                 "s = sigma * sigma / abs(m0) ** 2"):
        assert CRB_SCALING.search(compact_code(copy)), copy
    assert not CRB_SCALING.search(compact_code("fisher = (j.T @ j) / sigma**2"))  # the Fisher matrix is not it
