"""The paper's claims, declared as data (``claims.yaml`` beside this module) and judged by one function.

A claim "A is better than B" is *reproduced* when our mean difference has a 95 % CI entirely on the paper's side,
*contradicted* when it is entirely on the other side, and *inconclusive* otherwise (the verdict then states the
largest effect the data still allow); the rule is :func:`lanet_core.stats.verdict`, the one rule of the study.
The CI is Welch's over seeds for the fixed-split claims, and for the cross-validated (``cv_``) claims the corrected
repeated k-fold t-test over the (fold, seed) runs, which includes training variance; the per-image paired test
("given these trained models") is shown beside it in the evidence (:mod:`lanet_core.study.crossval`).
A claim "A is not better than B" needs an equivalence margin declared in advance (:data:`EQUIVALENCE_MARGINS`).

Adding a claim: one entry in ``claims.yaml`` (its header documents the fields); names in braces come from
:func:`claim_names`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any, Mapping

import numpy as np
import pandas as pd
import yaml

from lanet_core import reporting
from lanet_core.errors import ConfigError
from lanet_core.models.geometry import fine_stride
from lanet_core.stats import diff_ci, mean_ci, verdict
from lanet_core.study.experiments import FINE, fine_tuning_method, imagenet_cv_method, method_name, short
from lanet_core.study.notebook import Study

# Equivalence (non-superiority) margins for "A is not better than B" claims, declared with issue 12 before the
# cross-validated runs were analysed: 3 accuracy points (about the seed-to-seed SD of BUSI accuracy here),
# 3 AUC points, 0.03 IoU. A "no difference" claim without a margin is inconclusive.
EQUIVALENCE_MARGINS: dict[str, float] = {"accuracy": 0.03, "auc": 0.03, "iou": 0.03}

KINDS = ("seeds", "seed_drop", "gradcam", "paired_cv")
CONDITIONS = ("lanet_fine", "label_ratio", "input_size", "depth", "cross_validation", "cv_pretrained", "gradcam",
              "partial_labels_cv")


@dataclass
class Claim:
    """One checked claim: what the paper says, where, our evidence and the verdict."""

    key: str
    paper: str  # what the paper says
    where: str  # paper table / figure
    evidence: str = ""
    verdict: str = "not run"
    # cv_ claims: the verdict the per-image test alone gives ("given these trained models"), kept to show which
    # verdicts the training-variance test changed (issue 27); empty for other claims
    verdict_given_models: str = ""


def declared_claims(text: str | None = None) -> list[dict[str, Any]]:
    """The claim declarations of ``claims.yaml`` (or of ``text``), in order; checked: required fields, known
    kinds and conditions, unique keys."""
    if text is None:
        text = resources.files("lanet_core.study").joinpath("claims.yaml").read_text()
    entries = yaml.safe_load(text) or []
    for i, e in enumerate(entries):
        missing = {"key", "paper", "where", "experiment", "metric", "a", "b"} - set(e)
        if missing:
            raise ConfigError(f"claims.yaml entry {i + 1} ({e.get('key', '?')}): missing {sorted(missing)}")
        if e.get("kind", "seeds") not in KINDS:
            raise ConfigError(f"claims.yaml {e['key']}: kind {e['kind']!r} not one of {KINDS}")
        if e.get("when") is not None and e["when"] not in CONDITIONS:
            raise ConfigError(f"claims.yaml {e['key']}: when {e['when']!r} not one of {CONDITIONS}")
    keys = [e["key"] for e in entries]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ConfigError(f"claims.yaml: duplicate keys {dup}")
    return entries


def claim_names(study: Study) -> dict[str, Any]:
    """The names a claim's text and arms may use, from the profile (and the ratios / sizes the runs have)."""
    p = study.profile
    bb, bb2 = p.main_backbone, (p.backbones[1] if len(p.backbones) > 1 else None)
    lanet = method_name("lanet", bb)
    names: dict[str, Any] = {
        "lanet": lanet, "vanilla": method_name("classifier", bb), "rmtl": method_name("rmtl", bb),
        "vit": method_name("vit", p.vit_backbone), "lanet_fine": lanet + FINE, "bb_short": short(bb),
        "bb_ab": p.backbone_for("attention_ablation"),
        "lanet_lr": method_name("lanet", p.backbone_for("label_ratio")),
        "lanet_pl": method_name("lanet", p.backbone_for("partial_labels")),
        "fine_stride": fine_stride(p.lanet_fine),
    }
    # the partly-labelled CV over BUS-BRA's official folds (issue 28): the ImageNet MobileNetV2 regime's methods
    # and the localisation reference (the profile's scratch U-Net)
    names.update(pcv_lanet=fine_tuning_method(p, "lanet"), pcv_fine=fine_tuning_method(p, "lanet_fine"),
                 pcv_rmtl=fine_tuning_method(p, "rmtl"), pcv_vanilla=fine_tuning_method(p, "classifier"),
                 pcv_unet=method_name("unet", bb))
    # the ImageNet MobileNetV2 of the cross-validation (issue 13)
    names.update(pt_vanilla=imagenet_cv_method(p, "classifier"), pt_lanet=imagenet_cv_method(p, "lanet"),
                 pt_lanet_fine=imagenet_cv_method(p, "lanet_fine"))
    if bb2:
        names.update(bb2_short=short(bb2), lanet2=method_name("lanet", bb2), vanilla2=method_name("classifier", bb2))
    return names


def fill_names(value: Any, names: Mapping[str, Any]) -> Any:
    """A declared value with its names filled: ``"$name"`` -> the typed value, text -> ``str.format``."""
    if isinstance(value, dict):
        return {k: fill_names(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_names(v, names) for v in value]
    if isinstance(value, str):
        return names[value[1:]] if value.startswith("$") else value.format(**names)
    return value


def _vals(runs: pd.DataFrame, metric: str, **where) -> np.ndarray:
    if runs.empty or metric not in runs:
        return np.array([])
    sel = np.ones(len(runs), bool)
    for k, v in where.items():
        if k not in runs:
            return np.array([])
        sel &= (runs[k] == v).to_numpy()
    return runs.loc[sel, metric].dropna().to_numpy(float)


def _per_seed_drop(runs: pd.DataFrame, method: str, hi: float, lo: float, metric: str) -> np.ndarray:
    sub = runs[runs["method"] == method]
    a = sub[sub["ratio"] == hi].set_index("seed")[metric]
    b = sub[sub["ratio"] == lo].set_index("seed")[metric]
    both = a.index.intersection(b.index)
    return (a.loc[both] - b.loc[both]).dropna().to_numpy(float)


def _fmt(metric: str, x: np.ndarray) -> str:
    f = reporting.metric_format(metric)
    ci = mean_ci(x)
    return reporting.format_mean_ci(ci.mean, ci.half_width, f.scale, f.digits) + f" (n={len(x)})"


def judge(a: np.ndarray, b: np.ndarray, metric: str, la: str, lb: str, expect: str = "greater") -> tuple[str, str]:
    """(evidence text, verdict) for the claim ``a > b`` (``expect="greater"``), ``a < b`` ("less") or
    ``a not > b`` ("not_greater"); ``a``/``b``: one value per run (seeds), Welch's 95 % CI of the difference."""
    if len(a) == 0 or len(b) == 0:
        return "runs missing", "not run"
    d = diff_ci(a, b, metric)
    text = f"{la} {_fmt(metric, a)} vs {lb} {_fmt(metric, b)}; difference {d[metric]}"
    v = verdict(d[f"{metric}_diff"], d[f"{metric}_low"], d[f"{metric}_high"], metric, expect,
                margin=EQUIVALENCE_MARGINS.get(metric))
    return text, str(v)


def judge_cv(cv, a: str, b: str, metric: str, expect: str = "greater") -> tuple[str, str]:
    """(evidence, verdict) of :func:`judge_cv_both`."""
    text, v, _ = judge_cv_both(cv, a, b, metric, expect)
    return text, v


def judge_cv_both(cv, a: str, b: str, metric: str, expect: str = "greater") -> tuple[str, str, str]:
    """(evidence text, verdict) for "``a`` is better than ``b``" in the cross-validation (``cv``:
    :class:`lanet_core.study.crossval.CVRecords`): the verdict from the corrected repeated k-fold t-test over the
    (fold, seed) runs (with retraining); the per-image test over the out-of-fold images ("given these trained
    models") follows in the evidence with its own verdict, for comparison."""
    from lanet_core.study import crossval

    rt, img = crossval.repeated_cv(cv, a, b, metric), crossval.paired(cv.oof, a, b, metric)
    if rt is None:
        return "runs missing", "not run", ""
    margin = EQUIVALENCE_MARGINS.get(metric)
    folds = crossval.run_pairs(cv.runs, a, b, metric)["fold"].nunique()
    test = f"{rt.test} {reporting.format_p(rt.p)}" if reporting.format_p(rt.p) else f"no {rt.test} (one run each)"
    text = (f"{a} - {b} with retraining: {reporting.format_diff_ci(metric, rt.estimate, rt.low, rt.high)}"
            f"{_unit(metric)}, {test}, {reporting.count_noun(rt.n_pairs, '(fold, seed) pair')} over "
            f"{reporting.count_noun(folds, 'fold')}")
    image_verdict = ""
    if img is not None:
        iv = verdict(img.diff, img.low, img.high, metric, expect, margin=margin)
        image_verdict = f"{iv.kind} {reporting.format_diff_ci(metric, img.diff, img.low, img.high)}"
        text += (f"; given these trained models: {reporting.format_diff_ci(metric, img.diff, img.low, img.high)}"
                 f"{_unit(metric)}, {img.test} {reporting.format_p(img.p)}, {img.n} images ({iv.kind})")
    if rt.n_pairs < 2:  # a cross-validated claim needs at least two folds: outside both tallies until then
        return text, "not run (one run per arm so far: no test with retraining)", image_verdict
    return text, str(verdict(rt.estimate, rt.low, rt.high, metric, expect, margin=margin)), image_verdict


def _unit(metric: str) -> str:
    return " points" if reporting.metric_format(metric).scale == 100 else ""


def collapsed_methods(res) -> set[str]:
    """Methods whose every finished run predicts a single class on the test images."""
    per = res.per_image()
    if per.empty or "y_pred" not in per:
        return set()
    n_classes = per.groupby(["method", "seed"])["y_pred"].nunique()
    return {m for m, v in n_classes.groupby(level=0) if (v <= 1).all()}


class _Evidence:
    """The study's records, read once per experiment while the claims are judged."""

    def __init__(self, study: Study):
        self.study = study
        self._runs: dict[str, pd.DataFrame] = {}
        self._extra: dict[str, Any] = {}

    def runs(self, experiment: str) -> pd.DataFrame:
        if experiment not in self._runs:
            self._runs[experiment] = self.study.experiment(experiment).runs()
        return self._runs[experiment]

    def cached(self, key: str, make):
        if key not in self._extra:
            self._extra[key] = make()
        return self._extra[key]

    def gradcam_per_run(self) -> pd.DataFrame:
        def make():
            gc = self.study.experiment("fully_labelled").gradcam()
            if not len(gc):
                return gc
            return gc.groupby(["method", "seed"])["cam_energy_in_lesion"].mean().reset_index()
        return self.cached("gradcam", make)

    def cv(self, experiment: str = "cross_validation", subset: Mapping[str, Any] | None = None):
        """:class:`lanet_core.study.crossval.CVRecords` of a cross-validated experiment (``subset``: group filters,
        e.g. ``{boxed: 20}`` of the partly-labelled CV), read once."""
        from lanet_core.study import crossval

        def make():
            res = self.study.experiment(experiment)
            return crossval.cv_records(res.subset(**subset) if subset else res)

        return self.cached(f"cv:{experiment}:{sorted((subset or {}).items())}", make)

    def out_of_fold(self) -> pd.DataFrame:
        return self.cv().oof

    def collapsed(self, experiment: str) -> set[str]:
        return self.cached(f"collapsed:{experiment}", lambda: collapsed_methods(self.study.experiment(experiment)))

    def holds(self, condition: str | None, names: dict[str, Any]) -> bool:
        """Whether a claim's ``when`` condition holds (adds ``ratio_*`` / ``size_*`` names from the runs)."""
        p = self.study.profile
        if condition is None:
            return True
        if condition == "lanet_fine":
            return bool(p.lanet_fine)
        if condition == "depth":
            return "bb2_short" in names
        if condition == "label_ratio":
            lr = self.runs("label_ratio")
            if not len(lr):
                return False
            names.update(ratio_lo=lr["ratio"].min(), ratio_hi=lr["ratio"].max())
            return True
        if condition == "input_size":
            sz = self.runs("input_size")
            if not (len(sz) and sz["image_size"].nunique() >= 2):
                return False
            names["size_small"], names["size_large"] = sorted(sz["image_size"].unique())[:2]
            return True
        if condition == "cross_validation":
            return bool(p.cross_validation) and not self.out_of_fold().empty
        if condition == "cv_pretrained":
            oof = self.out_of_fold() if p.cross_validation else pd.DataFrame()
            return bool(len(oof)) and names["pt_lanet"] in set(oof["method"])
        if condition == "partial_labels_cv":  # issue 28: BUS-BRA's official folds have records (the box fractions
            # apart: the same image is tested once per fraction, so the whole experiment is no one CV)
            return bool(p.partial_labels_cv) and not self.runs("partial_labels_cv").empty
        if condition == "gradcam":
            return bool(len(self.gradcam_per_run()))
        raise ConfigError(f"unknown claim condition {condition!r}")


def _judge_one(ev: _Evidence, e: Mapping[str, Any], names: dict[str, Any]) -> Claim:
    c = Claim(fill_names(e["key"], names), fill_names(e["paper"], names), e["where"])
    kind, metric, expect = e.get("kind", "seeds"), e["metric"], e.get("expect", "greater")
    a, b = fill_names(e["a"], names), fill_names(e["b"], names)
    if kind == "paired_cv":
        experiment, subset = e.get("experiment", "cross_validation"), e.get("subset") or {}
        c.evidence, c.verdict, c.verdict_given_models = judge_cv_both(ev.cv(experiment, subset), a, b, metric, expect)
        runs = ev.runs(experiment)
        for k, v in subset.items():  # the devices of this CV's runs only (e.g. one box fraction)
            runs = runs[runs[k] == v] if k in runs else runs
        return _guard_devices(c, runs, a, b)
    if kind == "seed_drop":
        runs = ev.runs(e["experiment"])
        va, vb = (_per_seed_drop(runs, m, names["ratio_hi"], names["ratio_lo"], metric) for m in (a, b))
        default_labels = [a, b]
    else:
        runs = ev.gradcam_per_run() if kind == "gradcam" else ev.runs(e["experiment"])
        va, vb = _vals(runs, metric, **a), _vals(runs, metric, **b)
        default_labels = [a.get("method", ""), b.get("method", "")]
    la, lb = fill_names(e["labels"], names) if "labels" in e else default_labels
    c.evidence, c.verdict = judge(va, vb, e.get("format_as", metric), la, lb, expect=expect)
    if e.get("collapsed_arm") == "b" and b.get("method") in ev.collapsed(e["experiment"]):
        c.evidence += f"; {b['method']} collapsed: every run predicts one class"
        c.verdict = (f"{NOT_JUDGED}: collapsed baseline (predicts one class), not evidence about LA-Net "
                     f"(the difference alone would read {verdict_kind(c.verdict)})")
    return c if kind == "gradcam" else _guard_devices(c, runs, a, b)


def _guard_devices(c: Claim, runs: pd.DataFrame, a: Any, b: Any) -> Claim:
    """``c`` not judged where the runs behind its two arms were trained on different kinds of device: a GPU
    retrain of a CPU run moves accuracy by ~6.5 points (``hardware_check``), more than most effects claimed.
    For a cross-validated claim, mixing within one arm counts too (its folds would differ by device)."""
    devices = _arm_devices(runs, a) | _arm_devices(runs, b)
    if len(devices) > 1:
        c.evidence += f"; arms trained on {' and '.join(sorted(devices))}"
        c.verdict = (f"{NOT_JUDGED}: mixed devices ({' and '.join(sorted(devices))} runs compared; retrain one "
                     f"arm on the other's device)")
    return c


NOT_JUDGED = "not judged"  # a verdict outside the tally: collapsed comparator, or arms trained on different devices


def _arm_devices(runs: pd.DataFrame, arm: Mapping[str, Any]) -> set[str]:
    """The device kinds (cpu, gpu) of the runs behind one arm of a claim (``arm``: column -> value filters)."""
    if runs is None or not len(runs) or "device" not in runs:
        return set()
    arm = {"method": arm} if isinstance(arm, str) else arm
    sel = pd.Series(True, index=runs.index)
    for k, v in arm.items():
        if k in runs:
            sel &= runs[k] == v
    return {d for d in runs.loc[sel, "device"] if d}


def evaluate_claims(study: Study) -> pd.DataFrame:
    """Each declared claim whose condition holds, with our evidence and a verdict (columns of :class:`Claim`)."""
    ev = _Evidence(study)
    claims = []
    for e in declared_claims():
        names = claim_names(study)
        if ev.holds(e.get("when"), names):
            claims.append(_judge_one(ev, e, names))
    return pd.DataFrame([asdict(c) for c in claims])


def verdict_kind(text: str) -> str:
    """The kind a verdict text opens with: one of ``stats.VERDICTS``, :data:`NOT_JUDGED` or ``"not run"``
    (``"inconclusive (same direction, ...)"`` -> ``"inconclusive"``); anything else is an error, not a guess."""
    from lanet_core.stats import VERDICTS

    t = str(text)
    for kind in (*VERDICTS, NOT_JUDGED, "not run"):
        if t == kind or t.startswith((kind + " ", kind + ":")):
            return kind
    raise ConfigError(f"not a verdict: {t!r} (expected one of {(*VERDICTS, NOT_JUDGED, 'not run')})")


def claims_tally(claims: pd.DataFrame, given_models: bool = False) -> str:
    """The tally line over the verdicts (their first word).

    ``given_models=True``: the tally the per-image tests alone would give (the rule before issue 27), i.e. each
    ``cv_`` claim counted by ``verdict_given_models`` instead of its verdict with retraining.
    """
    from lanet_core.stats import tally

    if claims.empty:
        return ""
    verdicts = list(claims["verdict"])
    if given_models and "verdict_given_models" in claims:
        # a claim not judged (mixed devices, collapsed comparator) or not run (one run per arm) stays outside
        # the tally either way
        verdicts = [g if str(g) and verdict_kind(v) not in (NOT_JUDGED, "not run") else v
                    for v, g in zip(verdicts, claims["verdict_given_models"].fillna(""))]
    kinds = [k for k in map(verdict_kind, verdicts) if k != "not run"]
    text = tally(kinds)
    outside = kinds.count(NOT_JUDGED)
    return f"{text} (+ {outside} not judged: collapsed comparator or mixed devices)" if outside else text
