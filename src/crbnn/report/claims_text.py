"""The claims' verdicts as plain text: the one three-significant-digit number format of the README block
and the manuscript, the key number of each verdict and the sentence of all its numbers with their 95 %
intervals (``summary["claims"]``, :func:`crbnn.evaluate.claims.judge_all`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from crbnn.evaluate.claims import EFFICIENCY_BAND, PAPER_SNR, snr_label


def format_3g(x: float) -> str:
    """Plain text with three significant digits, trailing zeros kept (1.00, not 1); ``n/a`` when not
    finite.  The one plain-text number format of the claims and the README block (crbnn.report.record).

    >>> format_3g(1.004), format_3g(0.9943), format_3g(5.8), format_3g(100.0), format_3g(float("nan"))
    ('1.00', '0.994', '5.80', '100', 'n/a')
    """
    if not math.isfinite(x):
        return "n/a"
    return f"{x:#.3g}".rstrip(".")


def _in_order(d: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Items keyed by parameter in the order of the paper's parametrization, ``mean`` last."""
    from crbnn.common.parameters import PAPER_PARAMETERS

    rank = {p: i for i, p in enumerate(PAPER_PARAMETERS)}
    return sorted(d.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def _fmt_iv(iv: Sequence[float], signed: bool = False) -> str:
    f = (lambda x: ("+" if x > 0 else "") + format_3g(x)) if signed else format_3g  # noqa: E731
    return f"{f(iv[0])} [{f(iv[1])}, {f(iv[2])}]"


def claim_key_text(v: Mapping[str, Any]) -> str:
    """The one number behind a verdict, for the abstract and conclusion (plain text)."""
    name, num = v["name"], v.get("numbers", {})
    if name == "efficiency" and "test_mean_at_paper_snr" in num:
        text = (f"mean loss over the parameters at SNR {PAPER_SNR:g} on the test set {_fmt_iv(num['test_mean_at_paper_snr'])}, "
                f"band [{EFFICIENCY_BAND[0]:g}, {EFFICIENCY_BAND[1]:g}]")
        return text if v["verdict"] == "held" else f"{text}; {v['reason']}"
    if name == "superiority" and "ratio_at_paper_snr" in num:
        per = ", ".join(f"{p} {o.replace('a lower', 'CRB lower').replace('b lower', 'MSE lower')}"
                        for p, o in _in_order(num.get("at_paper_snr", {})))
        return f"MSE/CRB loss ratio {format_3g(num['ratio_at_paper_snr'])} at SNR {PAPER_SNR:g}; {per}"
    if name in ("bias", "variance", "bias_reduction") and "test set" in num.get("at_paper_snr", {}):
        per = num["at_paper_snr"]["test set"]
        a, b = num.get("pair", ["?", "?"])
        return (f"median paired difference {a} minus {b} on the test set at SNR {PAPER_SNR:g}: "
                + ", ".join(f"{p} {_fmt_iv(d['difference'], signed=True)}" for p, d in _in_order(per)))
    return v["reason"]


def claim_numbers_text(v: Mapping[str, Any]) -> str:
    """The numbers behind a verdict (``judge_all(...)[name]``) in one plain-text sentence, for the
    README block and the manuscript: values with their 95 % intervals at the paper's SNR, and the
    claim's margin beside its spread over training seeds where that was measured."""
    text = _numbers_text(v)
    num = v.get("numbers", {})
    spread, margin = num.get("seed_spread"), num.get("margin")
    if spread is not None and margin is not None:
        text += f"; margin {format_3g(margin)} against a spread over training seeds of {format_3g(spread)}"
    return text


def _numbers_text(v: Mapping[str, Any]) -> str:
    name, num = v["name"], v.get("numbers", {})
    if name == "efficiency":
        parts = []
        for where, per in num.get("at_paper_snr", {}).items():
            parts.append(f"{where}: " + ", ".join(f"{p} {_fmt_iv(d['loss'])}" for p, d in _in_order(per)))
        snrs = num.get("efficient_snrs", [])
        band = f"; efficient (mean over parameters) at SNR {', '.join(f'{s:g}' for s in snrs)}" if snrs else \
            "; efficient (mean over parameters) at no SNR of the sweep"
        return ("CRB-normalized loss of the CRB network at SNR 50, " + "; ".join(parts) + band) if parts else v["reason"]
    if name == "superiority":
        at = num.get("by_snr", {}).get(snr_label(PAPER_SNR), {})
        if not at:
            return v["reason"]
        parts = [f"{p} {_fmt_iv(d['crb'])} against {_fmt_iv(d['mse'])} ({d['outcome'].replace('a lower', 'CRB lower').replace('b lower', 'MSE lower')})"
                 for p, d in _in_order(at) if p != "mean"]
        return ("loss of the CRB against the MSE network at SNR 50, test set: " + "; ".join(parts)
                + f"; ratio MSE/CRB {format_3g(num.get('ratio_at_paper_snr', math.nan))}")
    if name in ("bias", "variance", "bias_reduction"):
        a, b = num.get("pair", ["?", "?"])
        parts = []
        for where, per in num.get("at_paper_snr", {}).items():
            parts.append(f"{where}: " + ", ".join(f"{p} {_fmt_iv(d['difference'], signed=True)}" for p, d in _in_order(per)))
        floor = num.get("noise_floor", {}).get("test set")
        extra = (f"; noise floor of |bias|/sqrt(CRB) on the test set {', '.join(f'{p} {format_3g(x)}' for p, x in _in_order(floor) if p != 'mean')}"
                 if floor else "")
        what = "|bias|/sqrt(CRB)" if name != "variance" else "|std/sqrt(CRB) - r_K|"
        return (f"median paired difference of {what}, {a} minus {b} network, at SNR 50: " + "; ".join(parts) + extra
                if parts else v["reason"])
    return v["reason"]
