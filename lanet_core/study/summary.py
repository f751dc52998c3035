"""The study's summary: headline table, the paper's claims checked against our runs, and ``<output>/README.md``.

A claim "A is better than B" is *reproduced* when our mean difference has a 95 % CI (Welch, over seeds)
entirely on the paper's side, *contradicted* when it is entirely on the other side, and *inconclusive*
otherwise (the direction is then stated).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lanet_core import reporting
from lanet_core.io import atomic_write_text
from lanet_core.stats import mean_ci
from lanet_core.study.experiments import method_name, short
from lanet_core.study.notebook import Study, diff_ci


# Equivalence (non-superiority) margins for "A is not better than B" claims, declared with issue 12 before the
# cross-validated runs were analysed: 3 accuracy points (about the seed-to-seed SD of BUSI accuracy here),
# 3 AUC points, 0.03 IoU. A "no difference" claim without a margin is inconclusive.
EQUIVALENCE_MARGINS: dict[str, float] = {"accuracy": 0.03, "auc": 0.03, "iou": 0.03}


@dataclass
class Claim:
    key: str
    paper: str  # what the paper says
    where: str  # paper table / figure
    evidence: str = ""
    verdict: str = "not run"


def _vals(runs: pd.DataFrame, metric: str, **where) -> np.ndarray:
    if runs.empty or metric not in runs:
        return np.array([])
    sel = np.ones(len(runs), bool)
    for k, v in where.items():
        if k not in runs:
            return np.array([])
        sel &= (runs[k] == v).to_numpy()
    return runs.loc[sel, metric].dropna().to_numpy(float)


def _fmt(metric: str, x: np.ndarray) -> str:
    f = reporting.metric_format(metric)
    ci = mean_ci(x)
    return reporting.format_mean_ci(ci.mean, ci.half_width, f.scale, f.digits) + f" (n={len(x)})"


def judge(a: np.ndarray, b: np.ndarray, metric: str, la: str, lb: str, expect: str = "greater") -> tuple[str, str]:
    """(evidence text, verdict) for the claim ``a > b`` (``expect="greater"``), ``a < b`` ("less") or
    ``a not > b`` ("not_greater")."""
    if len(a) == 0 or len(b) == 0:
        return "runs missing", "not run"
    d = diff_ci(a, b, metric)
    lo, hi, diff = d[f"{metric}_low"], d[f"{metric}_high"], d[f"{metric}_diff"]
    text = f"{la} {_fmt(metric, a)} vs {lb} {_fmt(metric, b)}; difference {d[metric]}"
    if np.isnan(lo):
        return text, "inconclusive (n < 2)"
    if diff == 0 and lo == hi:
        return text, "contradicted (identical repeats, no difference)" if expect != "not_greater" else "reproduced"
    sign = 1 if expect in ("greater", "not_greater") else -1
    lo_s, hi_s = sorted((sign * lo, sign * hi))
    if expect == "not_greater":  # "A is not better than B": needs a margin declared in advance (EQUIVALENCE_MARGINS)
        f = reporting.metric_format(metric)
        margin = EQUIVALENCE_MARGINS.get(metric)
        if lo > 0:
            return text, "contradicted"
        if margin is None:
            return text, "inconclusive (no equivalence margin declared)"
        if hi < margin:
            return text, f"reproduced (CI below the margin +{margin * f.scale:g})"
        return text, (f"inconclusive: the CI reaches {hi * f.scale:+.{f.digits}f}, above the declared margin "
                      f"+{margin * f.scale:g}")
    if lo_s > 0:
        return text, "reproduced"
    if hi_s < 0:
        return text, "contradicted"
    f = reporting.metric_format(metric)
    unit = " points" if f.scale == 100 else ""
    bound = hi if expect == "greater" else -lo  # the largest effect in the paper's direction the data allow
    return text, (f"inconclusive ({'same' if sign * diff > 0 else 'opposite'} direction, CI includes 0): "
                  f"rules out an effect above {bound * f.scale:+.{f.digits}f}{unit}")


def evaluate_claims(study: Study) -> pd.DataFrame:
    """Each of the paper's BUSI/MBUD claims with our evidence and a verdict."""
    p = study.profile
    bb, bb2 = p.main_backbone, (p.backbones[1] if len(p.backbones) > 1 else None)
    lanet, vanilla = method_name("lanet", bb), method_name("classifier", bb)
    claims: list[Claim] = []

    fl = study.experiment("fully_labelled").runs()
    for other, where in ((vanilla, "Table 5"), (method_name("rmtl", bb), "Table 5"), ("EB0", "Table 5"),
                         (method_name("vit", p.vit_backbone), "Table 5"), ("AGN", "Table 5")):
        c = Claim(f"cls_vs_{other}", f"LA-Net classifies better than {other} (BUSI accuracy)", where)
        c.evidence, c.verdict = judge(_vals(fl, "accuracy", method=lanet), _vals(fl, "accuracy", method=other), "accuracy", lanet, other)
        claims.append(c)
    collapsed = collapsed_methods(study.experiment("fully_labelled"))
    for c in claims:
        other = c.key.removeprefix("cls_vs_")
        if other in collapsed:
            c.evidence += f"; {other} collapsed: every run predicts one class"
            c.verdict = f"{c.verdict.split(' (')[0].split(':')[0]} - collapsed baseline (predicts one class), not evidence about LA-Net"
    c = Claim("auc_vs_vanilla", f"LA-Net has a higher AUC than {vanilla} (BUSI)", "Table 5")
    c.evidence, c.verdict = judge(_vals(fl, "auc", method=lanet), _vals(fl, "auc", method=vanilla), "auc", lanet, vanilla)
    claims.append(c)
    c = Claim("loc_vs_rmtl", "LA-Net localises better than RMTL (BUSI IoU)", "Table 6, Fig. 7a")
    rm = method_name("rmtl", bb)
    c.evidence, c.verdict = judge(_vals(fl, "iou", method=lanet), _vals(fl, "iou", method=rm), "iou", lanet, rm)
    claims.append(c)
    from lanet_core.study.experiments import FINE

    if p.lanet_fine:
        fine = lanet + FINE
        c = Claim("loc_fine_vs_rmtl", f"{fine} (stride-8 lesion map) localises better than RMTL (BUSI IoU)",
                  "Table 6, beyond the paper")
        c.evidence, c.verdict = judge(_vals(fl, "iou", method=fine), _vals(fl, "iou", method=rm), "iou", fine, rm)
        claims.append(c)
    for seg in ("U-Net", "DeepLabV3"):
        c = Claim(f"loc_{seg}", f"{seg} localises better than LA-Net on BUSI (IoU)", "Table 6")
        c.evidence, c.verdict = judge(_vals(fl, "iou", method=seg), _vals(fl, "iou", method=lanet), "iou", seg, lanet)
        claims.append(c)

    ab = study.experiment("attention_ablation").runs()
    fl_lanet, lanet = lanet, method_name("lanet", p.backbone_for("attention_ablation"))
    c = Claim("no_mam_cls", "Removing MAM lowers classification (BUSI accuracy)", "Table 7")
    c.evidence, c.verdict = judge(_vals(ab, "accuracy", method=lanet), _vals(ab, "accuracy", method=f"{lanet} (no MAM)"),
                                  "accuracy", "full", "no MAM")
    claims.append(c)
    for mod in ("CAM", "SAM"):
        c = Claim(f"no_{mod.lower()}_loc", f"Removing {mod} lowers localisation (BUSI IoU)", "Table 8")
        c.evidence, c.verdict = judge(_vals(ab, "iou", method=lanet), _vals(ab, "iou", method=f"{lanet} (no {mod})"),
                                      "iou", "full", f"no {mod}")
        claims.append(c)

    lr = study.experiment("label_ratio").runs()
    lanet = method_name("lanet", p.backbone_for("label_ratio"))
    if len(lr):
        lo, hi = lr["ratio"].min(), lr["ratio"].max()
        for metric, where in (("accuracy", "Fig. 8"), ("iou", "Fig. 9")):
            c = Claim(f"ratio_{metric}", f"More location labels improve LA-Net ({metric}, {lo:g} -> {hi:g})", where)
            c.evidence, c.verdict = judge(_vals(lr, metric, method=lanet, ratio=hi), _vals(lr, metric, method=lanet, ratio=lo),
                                          metric, f"{hi:g}", f"{lo:g}")
            claims.append(c)
        for other in ("U-Net", method_name("rmtl", bb)):
            c = Claim(f"ratio_drop_{other}", f"LA-Net loses less IoU than {other} when location labels go {hi:g} -> {lo:g}", "Fig. 9")
            drop = lambda m: _per_seed_drop(lr, m, hi, lo, "iou")  # noqa: E731
            c.evidence, c.verdict = judge(drop(other), drop(lanet), "iou", f"{other} drop", "LA-Net drop")
            claims.append(c)

    sz = study.experiment("input_size").runs()
    if len(sz) and sz["image_size"].nunique() >= 2:
        small, large = sorted(sz["image_size"].unique())[:2]
        c = Claim("size_loc", f"A larger input localises better ({small} -> {large} px, IoU)", "Fig. 11")
        c.evidence, c.verdict = judge(_vals(sz, "iou", image_size=large), _vals(sz, "iou", image_size=small), "iou", f"{large} px", f"{small} px")
        claims.append(c)
        c = Claim("size_cls", f"Classification is not better at the larger input ({small} -> {large} px, accuracy)", "Fig. 10")
        c.evidence, c.verdict = judge(_vals(sz, "accuracy", image_size=large), _vals(sz, "accuracy", image_size=small),
                                      "accuracy", f"{large} px", f"{small} px", expect="not_greater")
        claims.append(c)

    if bb2:
        dp = study.experiment("depth").runs()
        for fam, arch in (("LA-Net", "lanet"), ("Vanilla", "classifier")):
            c = Claim(f"depth_{fam}", f"{short(bb2)} classifies better than {short(bb)} ({fam}, accuracy)", "Fig. 6")
            c.evidence, c.verdict = judge(_vals(dp, "accuracy", method=method_name(arch, bb2)), _vals(dp, "accuracy", method=method_name(arch, bb)),
                                          "accuracy", short(bb2), short(bb))
            claims.append(c)
        c = Claim("depth_lanet_vs_vanilla_deep", f"LA-Net improves on the vanilla network with {short(bb2)} too (accuracy)", "Fig. 6")
        c.evidence, c.verdict = judge(_vals(dp, "accuracy", method=method_name("lanet", bb2)),
                                      _vals(dp, "accuracy", method=method_name("classifier", bb2)), "accuracy",
                                      method_name("lanet", bb2), method_name("classifier", bb2))
        claims.append(c)

    pl = study.experiment("partial_labels").runs()
    lanet = method_name("lanet", p.backbone_for("partial_labels"))
    for metric, expect, text, where in (("accuracy", "greater", "s-SSL raises classification over F (LA-Net, accuracy)", "Tables 3, 9"),
                                        ("iou_box", "less", "s-SSL lowers localisation compared with F (LA-Net, box IoU)", "Tables 4, 10")):
        c = Claim(f"ssl_{metric}", text + " [BUS-BRA stand-in for MBUD]", where)
        c.evidence, c.verdict = judge(_vals(pl, metric, method=f"{lanet}-s-SSL"), _vals(pl, metric, method=f"{lanet}-F"),
                                      metric, "s-SSL", "F", expect=expect)
        claims.append(c)

    claims += cross_validated_claims(study)

    lanet = fl_lanet
    gc = study.experiment("fully_labelled").gradcam()
    if len(gc):
        per_run = gc.groupby(["method", "seed"])["cam_energy_in_lesion"].mean().reset_index()
        c = Claim("gradcam", "LA-Net's Grad-CAM overlaps the lesion more than the vanilla network's (CAM energy in lesion)", "Fig. 12")
        c.evidence, c.verdict = judge(_vals(per_run, "cam_energy_in_lesion", method=lanet),
                                      _vals(per_run, "cam_energy_in_lesion", method=vanilla), "iou", lanet, vanilla)
        claims.append(c)
    return pd.DataFrame([c.__dict__ for c in claims])


def collapsed_methods(res) -> set[str]:
    """Methods whose every finished run predicts a single class on the test images."""
    per = res.per_image()
    if per.empty or "y_pred" not in per:
        return set()
    n_classes = per.groupby(["method", "seed"])["y_pred"].nunique()
    return {m for m, v in n_classes.groupby(level=0) if (v <= 1).all()}


def cross_validated_claims(study: Study) -> list[Claim]:
    """The headline claims decided on out-of-fold predictions over every BUSI image (paired tests over images)."""
    from lanet_core import stats
    from lanet_core.study import crossval
    from lanet_core.study.experiments import FINE

    p = study.profile
    if not p.cross_validation:
        return []
    res = study.experiment("cross_validation")
    oof = crossval.out_of_fold(res)
    if oof.empty:
        return []
    bb = p.main_backbone
    lanet, vanilla, rmtl = method_name("lanet", bb), method_name("classifier", bb), method_name("rmtl", bb)
    todo = [(lanet, vanilla, "accuracy", "Table 5"), (lanet, vanilla, "auc", "Table 5"),
            (lanet, rmtl, "accuracy", "Table 5"), (lanet, rmtl, "auc", "Table 5"),
            (lanet, rmtl, "iou", "Table 6, Fig. 7a"), (lanet, "AGN", "accuracy", "Table 5"),
            (method_name("unet", bb), lanet, "iou", "Table 6"), (lanet + FINE, rmtl, "iou", "beyond the paper"),
            (lanet + FINE, "AGN", "iou", "beyond the paper")]
    out = []
    for a, b, m, where in todo:
        text = {"accuracy": "classifies better", "auc": "has a higher AUC", "iou": "localises better"}[m]
        c = Claim(f"cv_{m}_{a}_vs_{b}", f"{a} {text} than {b} (BUSI 5-fold CV, paired over images)", where)
        d = crossval.paired(oof, a, b, m)
        if d is None:
            c.evidence = "runs missing"
        else:
            f = reporting.metric_format(m)
            unit = " points" if f.scale == 100 else ""
            c.evidence = (f"{a} - {b} = {d.diff * f.scale:+.{f.digits}f} [{d.low * f.scale:+.{f.digits}f}, "
                          f"{d.high * f.scale:+.{f.digits}f}]{unit}, {d.test} p = {d.p:.3g}, {d.n} images")
            v = stats.verdict(d, "better")
            c.verdict = v["verdict"] if v["verdict"] != "inconclusive" else (
                f"inconclusive: rules out a gain above {d.high * f.scale:+.{f.digits}f}{unit}")
        out.append(c)
    return out


def claims_tally(claims: pd.DataFrame) -> str:
    """The tally line over the verdicts (their first word)."""
    from lanet_core.stats import tally

    if claims.empty:
        return ""
    return tally(v.split(" ")[0].split(":")[0] for v in claims["verdict"] if v != "not run")


def _per_seed_drop(runs: pd.DataFrame, method: str, hi: float, lo: float, metric: str) -> np.ndarray:
    sub = runs[runs["method"] == method]
    a = sub[sub["ratio"] == hi].set_index("seed")[metric]
    b = sub[sub["ratio"] == lo].set_index("seed")[metric]
    both = a.index.intersection(b.index)
    return (a.loc[both] - b.loc[both]).dropna().to_numpy(float)


def compute_hours(study: Study) -> tuple[float, int]:
    """(CPU/GPU hours of training + evaluation summed over the profile's finished runs, number of runs)."""
    done = [p.parent for p in sorted((study.profile.output / "runs").glob("*/metrics.json"))]
    return sum(_hours(_provenance(d)) for d in done), len(done)


def _provenance(run_dir: Path) -> dict:
    path = run_dir / "provenance.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _device_kind(prov: dict) -> str:
    """``"cpu"`` or the GPU's name (``"cuda: NVIDIA H200"``) a run was trained on."""
    dev = str(prov.get("device", "?"))
    if dev.startswith("cuda"):
        return f"cuda: {prov.get('hardware', {}).get('gpu') or 'GPU'}"
    return dev


def _hours(prov: dict) -> float:
    return sum(v for k, v in prov.get("wall_seconds", {}).items() if k != "fit_call") / 3600


def runs_by_device(study: Study) -> pd.DataFrame:
    """One row per experiment (and a total over unique runs): finished runs and hours on each device."""
    from lanet_core.study.experiments import EXPERIMENTS, experiment_runs
    from lanet_core.study.records import run_dir_of

    rows, seen = [], {}
    for exp in EXPERIMENTS:
        counts: dict[str, list[float]] = {}
        for spec in experiment_runs(exp, study.profile):
            d = run_dir_of(spec, study.profile)
            if not (d / "metrics.json").is_file():
                continue
            prov = _provenance(d)
            seen[d] = prov
            counts.setdefault(_device_kind(prov), []).append(_hours(prov))
        for dev, hours in sorted(counts.items()):
            rows.append({"experiment": exp, "device": dev, "runs": len(hours), "hours": round(sum(hours), 2)})
    totals: dict[str, list[float]] = {}
    for prov in seen.values():
        totals.setdefault(_device_kind(prov), []).append(_hours(prov))
    for dev, hours in sorted(totals.items()):
        rows.append({"experiment": "all (unique runs)", "device": dev, "runs": len(hours), "hours": round(sum(hours), 2)})
    return pd.DataFrame(rows, columns=["experiment", "device", "runs", "hours"])


HARDWARE_CHECK_METRICS = ("accuracy", "auc", "f1_macro", "iou", "iou_box")


def hardware_check(study: Study) -> pd.DataFrame:
    """Runs retrained under ``<output>/hardware_check/<check>/runs/`` against the study's run of the same config.

    Each check folder holds runs whose config hash equals a study run's (same config and seed) but that were
    trained again, e.g. a CPU run's config retrained on a GPU, or a GPU run repeated on the GPU. One row per
    (check, run, metric): the study run's value, the retrained value, and their difference (retrained - study).
    """
    root = study.profile.output / "hardware_check"
    rows = []
    for check in sorted(p for p in root.glob("*") if (p / "runs").is_dir()):
        for d in sorted((check / "runs").glob("*/metrics.json")):
            run = d.parent.name
            ref = study.profile.output / "runs" / run
            if not (ref / "metrics.json").is_file():
                continue
            a = json.loads((ref / "metrics.json").read_text())["test"]
            b = json.loads(d.read_text())["test"]
            pair = {"check": check.name, "run": run, "study_device": _device_kind(_provenance(ref)),
                    "check_device": _device_kind(_provenance(d.parent))}
            for m in HARDWARE_CHECK_METRICS:
                if a.get(m) is None or b.get(m) is None:
                    continue
                rows.append({**pair, "metric": m, "study": a[m], "retrained": b[m], "difference": b[m] - a[m]})
    return pd.DataFrame(rows, columns=["check", "run", "study_device", "check_device", "metric", "study",
                                       "retrained", "difference"])


def hardware_check_summary(check: pd.DataFrame, study: Study | None = None) -> pd.DataFrame:
    """Per check and metric: pairs, identical pairs, mean and largest |difference|; with ``study``, also the
    seed-to-seed standard deviation of that metric (median over the fully-labelled methods) for scale."""
    cols = ["check", "metric", "pairs", "identical", "mean_abs_difference", "max_abs_difference", "seed_sd"]
    if check.empty:
        return pd.DataFrame(columns=cols)
    g = check.assign(abs_diff=check["difference"].abs()).groupby(["check", "metric"], sort=False)
    out = g.agg(pairs=("abs_diff", "size"), identical=("abs_diff", lambda x: int((x < 1e-12).sum())),
                mean_abs_difference=("abs_diff", "mean"), max_abs_difference=("abs_diff", "max")).reset_index()
    sd = {}
    if study is not None:
        runs = study.experiment("fully_labelled").runs()
        for m in out["metric"].unique():
            if m in runs:
                per_method = runs.groupby("method")[m].std(ddof=1).dropna()
                sd[m] = float(per_method.median()) if len(per_method) else np.nan
    out["seed_sd"] = out["metric"].map(sd).astype(float)
    return out[cols]


TABLE_INDEX = [
    ("Table 5 - BUSI classification (fully labelled)", "table5_busi_classification_vs_paper", "fig_busi_fully_labelled"),
    ("Table 6 - BUSI localisation (fully labelled)", "table6_busi_localisation_vs_paper", None),
    ("Table 6 companion - IoU at validation-tuned thresholds, lesion-map size and oracle ceiling",
     "table6_busi_localisation_ceilings", None),
    ("Beyond the paper - 5-fold cross-validation over every BUSI image", "cv_summary", None),
    ("Beyond the paper - paired tests over out-of-fold predictions", "cv_paired_tests", "fig_cv_paired_differences"),
    ("Beyond the paper - lesion-map oracle ceilings (test split)", "lesion_map_ceilings", None),
    ("Beyond the paper - LA-Net-fine training target, chosen on validation IoU", "lesion_target_comparison", None),
    ("Beyond the paper - stage-2 selection: validation accuracy vs mean(AUC, IoU)", "selection_criterion_comparison", None),
    ("Beyond the paper - stage-2 selection across the 5 cross-validation folds", "cv_selection_criterion_comparison", None),
    ("Table 5/6 companion - leak-free test subset", "table5_busi_leak_free", None),
    ("Table 5/6 companion - paired bootstrap over test images", "table5_busi_paired_bootstrap", None),
    ("Tables 3, 9 - partly-labelled classification (BUS-BRA stand-in for MBUD)", "table3_busbra_partial_classification", "fig_busbra_partial_labels"),
    ("Tables 4, 10 - partly-labelled localisation (boxes; masks beyond the paper)", "table4_busbra_partial_localisation", None),
    ("Tables 9-10 - s-SSL minus fully-labelled subset", "table9_10_ssl_minus_f", None),
    ("Beyond the paper - s-SSL sensitivity to tau and alpha", "sensitivity_tau_alpha", "fig_sensitivity_tau"),
    ("Beyond the paper - external validity BUSI -> BUS-BRA", "external_busi_to_busbra", None),
    ("Beyond the paper - external validity BUS-BRA -> BUSI", "external_busbra_to_busi", None),
    ("Table 7 - attention ablation, classification", "table7_busi_attention_classification_vs_paper", "fig_attention_ablation"),
    ("Table 8 - attention ablation, localisation", "table8_busi_attention_localisation_vs_paper", None),
    ("Figs. 8-9 - number of location labels", "fig8_9_label_ratio", "fig8_label_ratio_classification"),
    ("Figs. 10-11 - input size", "input_size_difference", "fig11_input_size_localisation"),
    ("Figs. 6-7 - feature-extractor depth", "fig6_7_depth", "fig6_depth_classification"),
    ("Fig. 12 - Grad-CAM, measured", "gradcam_localisation", "fig12_gradcam"),
    ("Fig. 5 - predicted lesion masks; IoU threshold sweep", "iou_threshold_sweep", "fig5_lesion_masks"),
    ("Beyond the paper - ImageNet pretraining (MobileNetV2) vs scratch", "pretraining_difference", "fig_pretraining"),
    ("Beyond the paper - pretraining regimes: scratch R18/MNV2, ImageNet MNV2 (BN frozen / rebuilt), the paper's "
     "ImageNet R18", "pretraining_regimes", None),
    ("Beyond the paper - differences between pretraining regimes", "pretraining_regime_differences", None),
    ("Data audit - counts and near-duplicates", "data_counts", "fig4_examples"),
]


def _hardware_section(by_device: pd.DataFrame | None, check: pd.DataFrame | None) -> list[str]:
    if by_device is None or by_device.empty:
        return []
    md = ["## Hardware", "",
          "Where each experiment's runs were trained (`device` in each run's `provenance.json`) and the hours they "
          "took. A run is identified by its config, not its device, so runs of one table can come from different "
          "machines; the check below measures what that does.", "",
          reporting.markdown_table(by_device), ""]
    if check is not None and not check.empty:
        md += ["Hardware check (`hardware_check/<check>/runs/`: the same config and seed trained again; "
               "`gpu_replicates_of_cpu_runs` = CPU runs retrained on the GPU, `gpu_repeats` = GPU runs trained "
               "twice on the GPU). Differences are retrained minus study run, as fractions; `seed_sd` is the "
               "seed-to-seed standard deviation of the metric (median over the fully-labelled methods) for scale.",
               "", reporting.markdown_table(check.round(4)), "",
               "Per run: [`tables/hardware_check.csv`](tables/hardware_check.csv).", ""]
    return md


def resolution_section(study: Study) -> list[str]:
    """Issue 11: how much of LA-Net's localisation gap is the resolution of its lesion map (numbers from the
    fully-labelled runs and the oracle ceilings)."""
    from lanet_core.study.experiments import FINE

    p = study.profile
    if not p.lanet_fine:
        return []
    runs = study.experiment("fully_labelled").runs()
    if runs.empty or "iou" not in runs:
        return []
    lanet = method_name("lanet", p.main_backbone)
    names = [lanet, lanet + FINE, method_name("rmtl", p.main_backbone), "AGN", "U-Net"]
    rows = []
    for m in names:
        sub = runs[runs["method"] == m]
        if sub.empty:
            continue
        ci = mean_ci(sub["iou"].dropna())
        tuned = sub["iou_tuned"].dropna() if "iou_tuned" in sub else pd.Series(dtype=float)
        ceiling = sub["iou_ceiling"].dropna().iloc[0] if "iou_ceiling" in sub and sub["iou_ceiling"].notna().any() else np.nan
        rows.append({"method": m, "seeds": len(sub), "lesion map": sub["lesion_map"].iloc[0] if "lesion_map" in sub else "",
                     "IoU at 0.5": reporting.format_mean_ci(ci.mean, ci.half_width, 1.0, 3),
                     "IoU at the val-tuned threshold": f"{tuned.mean():.3f} ({len(tuned)} seed(s))" if len(tuned) else "",
                     "oracle ceiling at 0.5": "" if np.isnan(ceiling) else f"{ceiling:.3f}",
                     "IoU / oracle": "" if np.isnan(ceiling) else f"{ci.mean / ceiling:.0%}"})
    if len(rows) < 2:
        return []
    return ["## LA-Net's lesion map: resolution vs method", "",
            "The paper's LA-Net fuses its lesion map at input/32: 4x4 cells at 128 px. A perfect predictor of its "
            "training target (the mask averaged over each cell, upsampled and thresholded as the model's map) "
            "reaches the *oracle* IoU below on the same test images; LA-Net-fine fuses at input/8 (16x16). A model "
            "that learns its target exactly scores the oracle; one whose map is sharper than the soft target can "
            "exceed it, so the oracle is the ceiling of the training target, not a hard bound. The gap between "
            "LA-Net and LA-Net-fine is what resolution costs; the gap to the segmenters is what remains.", "",
            reporting.markdown_table(pd.DataFrame(rows)), ""]


def write_readme(study: Study, headline: pd.DataFrame, claims: pd.DataFrame, conditions: str,
                 by_device: pd.DataFrame | None = None, check: pd.DataFrame | None = None) -> Path:
    """``<output>/README.md``: conditions, compute (by device), headline, claims, then every table beside the paper's."""
    out = study.profile.output
    hours, n_runs = compute_hours(study)
    md = [
        f"# Results of the `{study.profile.name}` profile",
        "",
        "Generated by `notebooks/12_summary.py` (`make figures` re-renders it from the run records; "
        "`make study` trains what is missing). Every number below comes from the run records under `runs/`.",
        "",
        "## Conditions",
        "",
        conditions.strip(),
        "",
        f"Compute: {hours:.1f} hours of training and evaluation over {n_runs} finished runs "
        "(sum of per-run wall times from `runs/*/provenance.json`).",
        "",
        *_hardware_section(by_device, check),
        "## Headline (BUSI, fully labelled, mean ± 95 % CI over seeds; paper: 256 px, ImageNet, test-set selection)",
        "",
        reporting.markdown_table(headline) if len(headline) else "(no runs yet)",
        "",
        *resolution_section(study),
        "## The paper's claims, checked",
        "",
        "Verdict rule: reproduced = our 95 % CI of the difference lies on the paper's side; contradicted = on the "
        "other side; inconclusive = the CI includes 0, and then the verdict states the largest effect the data still "
        "allow. Fixed-split claims use the two-sided Welch CI over seeds (the same test as the stars in every "
        "table); `cv_` claims use paired tests over the ~645 out-of-fold BUSI images (exact McNemar, DeLong, "
        "paired t). A \"not better\" claim needs an equivalence margin declared in advance "
        f"({', '.join(f'{k} {v * reporting.metric_format(k).scale:g}' for k, v in EQUIVALENCE_MARGINS.items())}).",
        "",
        f"**Tally: {claims_tally(claims)}**" if len(claims) else "",
        "",
        reporting.markdown_table(claims[["where", "paper", "evidence", "verdict"]]) if len(claims) else "",
        "",
        "## Tables and figures",
        "",
    ]
    for title, table, fig in TABLE_INDEX:
        md.append(f"### {title}")
        md.append("")
        tpath = study.tables_dir / f"{table}.md"
        md.append(tpath.read_text().strip() if tpath.is_file() else "(not produced yet)")
        md.append("")
        links = [f"[`tables/{table}.csv`](tables/{table}.csv)"]
        if fig and (study.figures_dir / f"{fig}.png").is_file():
            links.append(f"[`figures/{fig}.png`](figures/{fig}.png)")
        md.append("Files: " + ", ".join(links))
        md.append("")
    path = out / "README.md"
    atomic_write_text(path, "\n".join(md) + "\n")
    return path


def headline_table(study: Study) -> pd.DataFrame:
    """Main-backbone LA-Net and the baselines on BUSI: accuracy, AUC, F1, IoU, Dice, with the paper's values."""
    from lanet_core.study.notebook import with_paper

    runs = study.experiment("fully_labelled").runs()
    if runs.empty:
        return runs
    metrics = ["accuracy", "auc", "f1_macro", "iou", "dice"]
    rows = []
    for method, df in runs.groupby("method", sort=False):
        row = {"method": method, "n": len(df)}
        for m in metrics:
            if df[m].notna().any():
                f = reporting.metric_format(m)
                ci = mean_ci(df[m].dropna())
                row[m] = reporting.format_mean_ci(ci.mean, ci.half_width, f.scale, f.digits)
        rows.append(row)
    ours = pd.DataFrame(rows)
    cls = with_paper(ours, "T1", ["accuracy", "auc", "f1_macro"], size="256")
    loc = with_paper(ours, "T2", ["iou", "dice"], size="256")
    merged = cls.merge(loc, on="method", how="left")
    return merged
