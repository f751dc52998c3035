"""The study's summary: headline table, the hardware check, compute hours and ``<output>/README.md``.

The paper's claims are declared and judged in :mod:`lanet_core.study.claims` (``evaluate_claims`` and
``claims_tally`` are re-exported here for the summary notebook).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lanet_core import reporting
from lanet_core.io import atomic_write_text
from lanet_core.paths import project_root
from lanet_core.runs import read_provenance
from lanet_core.stats import mean_ci
from lanet_core.study.claims import EQUIVALENCE_MARGINS, NOT_JUDGED, claims_tally, verdict_kind
from lanet_core.study.claims import evaluate_claims  # noqa: F401 (re-exported: the summary notebook imports it here)
from lanet_core.study.experiments import method_name
from lanet_core.reporting.formats import CLIPPED_NOTE
from lanet_core.study.notebook import Study
from lanet_core.study.records import device_name


def compute_hours(study: Study) -> tuple[float, int]:
    """(CPU/GPU hours of training + evaluation summed over the profile's finished runs, number of runs)."""
    done = [p.parent for p in sorted((study.profile.output / "runs").glob("*/metrics.json"))]
    return sum(_hours(_provenance(d)) for d in done), len(done)


def _provenance(run_dir: Path) -> dict:
    return read_provenance(run_dir)


def _hours(prov: dict) -> float:
    return sum(v for k, v in prov.get("wall_seconds", {}).items() if k != "fit_call") / 3600


def _experiment_run_dirs(study: Study):
    """``(experiment, [(spec, run directory, finished?)])`` for every registered experiment of the profile."""
    from lanet_core.study.experiments import EXPERIMENTS, experiment_runs
    from lanet_core.study.records import run_dir_of

    for exp in EXPERIMENTS:
        dirs = [(s, run_dir_of(s, study.profile)) for s in experiment_runs(exp, study.profile)]
        yield exp, [(s, d, (d / "metrics.json").is_file()) for s, d in dirs]


def runs_by_device(study: Study) -> pd.DataFrame:
    """One row per experiment (and a total over unique runs): finished runs and hours on each device."""
    rows, seen = [], {}
    for exp, runs in _experiment_run_dirs(study):
        counts: dict[str, list[float]] = {}
        for spec, d, finished in runs:
            if not finished:
                continue
            prov = _provenance(d)
            seen[d] = prov
            counts.setdefault(device_name(prov), []).append(_hours(prov))
        for dev, hours in sorted(counts.items()):
            rows.append({"experiment": exp, "device": dev, "runs": len(hours), "hours": round(sum(hours), 2)})
    totals: dict[str, list[float]] = {}
    for prov in seen.values():
        totals.setdefault(device_name(prov), []).append(_hours(prov))
    for dev, hours in sorted(totals.items()):
        rows.append({"experiment": "all (unique runs)", "device": dev, "runs": len(hours), "hours": round(sum(hours), 2)})
    return pd.DataFrame(rows, columns=["experiment", "device", "runs", "hours"])


def unfinished_experiments(study: Study) -> pd.DataFrame:
    """One row per experiment of the profile with runs still to train: ``finished``/``planned`` unique runs (a
    run shared by two specs, e.g. a classifier serving both box fractions, counts once) and, for a cross-validated
    experiment, the folds whose every planned run is finished (per box fraction where it has ``boxed`` groups)."""
    rows = []
    for exp, runs in _experiment_run_dirs(study):
        dirs = {}  # run directory -> finished (a directory shared by two specs counts once)
        folds: dict[tuple, bool] = {}
        for s, d, ok in runs:
            dirs[d] = ok
            if "fold" in s.group:
                key = (s.group.get("boxed"), s.group["fold"])
                folds[key] = folds.get(key, True) and ok
        if not dirs or all(dirs.values()):
            continue
        complete = [(b, f) for (b, f), ok in sorted(folds.items(), key=lambda kv: (-(kv[0][0] or 0), kv[0][1])) if ok]
        text = ", ".join(f"{f}" if b is None else f"{f} ({b} % boxed)" for b, f in complete)
        rows.append({"experiment": exp, "finished": sum(dirs.values()), "planned": len(dirs),
                     "complete folds": (text or "none") if folds else ""})
    return pd.DataFrame(rows, columns=["experiment", "finished", "planned", "complete folds"])


def _unfinished_md(todo: pd.DataFrame, profile: str) -> list[str]:
    if todo.empty:
        return []
    parts = [f"{r['experiment']} {r['finished']} of {r['planned']} runs"
             + (f" (complete folds: {r['complete folds']})" if r["complete folds"] else "")
             for r in todo.to_dict("records")]
    return [f"Still to train: {'; '.join(parts)}. Tables, figures and claims of these experiments use the finished "
            "runs only (a cross-validated claim states its folds in its evidence); "
            f"`lanet study --profile {profile} --plan` prices the rest.", ""]


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
            pair = {"check": check.name, "run": run, "study_device": device_name(_provenance(ref)),
                    "check_device": device_name(_provenance(d.parent))}
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
    ("Beyond the paper - attention ablation of LA-Net-fine (stars vs the full LA-Net-fine)", "attention_ablation_fine",
     None),
    ("Figs. 8-9 - number of location labels", "fig8_9_label_ratio", "fig8_label_ratio_classification"),
    ("Figs. 10-11 - input size", "input_size_difference", "fig11_input_size_localisation"),
    ("Figs. 6-7 - feature-extractor depth", "fig6_7_depth", "fig6_depth_classification"),
    ("Fig. 12 - Grad-CAM, measured", "gradcam_localisation", "fig12_gradcam"),
    ("Fig. 5 - predicted lesion masks; IoU threshold sweep", "iou_threshold_sweep", "fig5_lesion_masks"),
    ("Beyond the paper - ImageNet pretraining (MobileNetV2) vs scratch", "pretraining_difference", "fig_pretraining"),
    ("Beyond the paper - pretraining regimes: scratch R18/MNV2, ImageNet MNV2 (BN frozen / rebuilt), the paper's "
     "ImageNet R18", "pretraining_regimes", None),
    ("Beyond the paper - differences between pretraining regimes", "pretraining_regime_differences", None),
    ("Beyond the paper - what limits the pretrained regime: validation curves per lr regime",
     "pretraining_validation_curves", "fig_pretraining_learning_curves"),
    ("Data audit - counts and near-duplicates", "data_counts", "fig4_examples"),
]


# The partly-labelled cross-validation's tables and figures, one set per box fraction (``{boxed}``: the tags of the
# profile's ``partial_labels_cv.box_fractions``), listed after the fixed split's Tables 9-10.
PARTIAL_CV_INDEX = [
    ("Tables 3, 4, 9, 10 over BUS-BRA's 5 official folds, boxes on {boxed} % - per method", "busbra_cv_box{boxed}_summary",
     None),
    ("Tables 3, 4, 9, 10 over BUS-BRA's 5 official folds, boxes on {boxed} % - s-SSL minus F and the paper's "
     "comparisons", "busbra_cv_box{boxed}_ssl_minus_f", "fig_busbra_cv_box{boxed}_paired_differences"),
    ("Table 9 over BUS-BRA's 5 official folds, boxes on {boxed} % - what more seeds per fold would buy",
     "busbra_cv_box{boxed}_precision", None),
]


def table_index(profile) -> list[tuple[str, str, str | None]]:
    """:data:`TABLE_INDEX` with the partly-labelled CV's entries for each box fraction of ``profile`` inserted after
    the fixed split's Tables 9-10 (none where the profile does not run that experiment)."""
    from lanet_core.study.experiments import partial_cv_box_fractions

    extra = [(t.format(boxed=b), n.format(boxed=b), f.format(boxed=b) if f else None)
             for b in partial_cv_box_fractions(profile) for t, n, f in PARTIAL_CV_INDEX]
    at = next(i for i, e in enumerate(TABLE_INDEX) if e[1] == "table9_10_ssl_minus_f") + 1
    return TABLE_INDEX[:at] + extra + TABLE_INDEX[at:]


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


def pretrained_section(study: Study) -> list[str]:
    """Issue 13: the ImageNet MobileNetV2 regimes against the paper's ImageNet ResNet18 - fixed-split test, the
    same runs' best validation values (what the regime reaches where it is selected) and, where the profile runs
    it, the pooled 5-fold cross-validation. Numbers only from run records (and the paper's table)."""
    from lanet_core.study import crossval, pretraining
    from lanet_core.study.experiments import IMAGENET, fine_tuning_init
    from lanet_core.data.sources import load_manifest
    from lanet_core.study.notebook import paper_numbers

    p = study.profile
    pre = study.experiment("pretraining")
    pre_runs = pre.runs()
    if not p.pretrained or pre_runs.empty or not pre_runs["init"].astype(str).str.startswith("ImageNet").any():
        return []
    labels = pretraining.regime_labels(p)
    pre_runs = pre_runs[pre_runs["init"].astype(str).str.startswith("ImageNet")]
    regimes = pretraining.regime_runs(pd.DataFrame(), pre_runs, labels)
    table = pretraining.regimes_table(regimes, paper_numbers())
    val = pretraining.validation_summary(pretraining.regime_history(pre.history(), regimes))
    table = table.merge(val[["regime", "kind", "best val accuracy", "best val auc", "selected in last 2 epochs"]],
                        on=["regime", "kind"], how="left")
    cv_rows: dict[tuple[str, str], dict] = {}
    want = (p.cross_validation or {}).get("pretrained")
    if want:
        cv = crossval.fold_summary(None, cv=crossval.cv_records(study.experiment("cross_validation")))
        label = labels.get(fine_tuning_init(want.get("regime", "")), "")
        for _, r in (cv[cv["method"].str.endswith(IMAGENET)] if len(cv) else cv).iterrows():
            kind = pretraining.method_kind(r["method"][: -len(IMAGENET)])
            acc, auc = r.get("accuracy (pooled)", np.nan), r.get("auc (pooled)", np.nan)
            cv_rows[(label, kind)] = {"CV accuracy (pooled)": "" if pd.isna(acc) else f"{acc:.1f} ({r['folds']} folds)",
                                      "CV AUC (pooled)": "" if pd.isna(auc) else f"{auc:.1f}"}
    choice_text = ""
    if want:
        n_val = int((load_manifest(p.dataset("busi"))[0]["split"] == "val").sum())
        best, ranking = pretraining.regime_choice_by_validation(val, n_val=n_val)
        used = labels.get(fine_tuning_init(want.get("regime", "")), "")
        choice_text = (f" The cross-validation runs the regime '{used}', chosen when it was added on fixed-split "
                       f"*test* accuracy (issue 13), not on validation. {ranking} Validation alone would pick "
                       f"'{best}'{' (the same)' if best == used else ''}; the cross-validation was not retrained "
                       "for that, so its ImageNet rows carry a choice that looked at the fixed split's test images "
                       "(which are also among the CV test folds).")
    rows = []
    for _, r in table.iterrows():
        row = {"regime": r["regime"], "kind": r["kind"], "px": r["input (px)"], "seeds": r["seeds"],
               "test accuracy": r.get("accuracy", ""), "test AUC": r.get("auc", ""), "test IoU": r.get("iou", ""),
               "best val accuracy": r.get("best val accuracy", ""), "best val AUC": r.get("best val auc", ""),
               "selected in last 2 epochs": r.get("selected in last 2 epochs", "")}
        row.update(cv_rows.get((r["regime"], r["kind"]), {}))
        rows.append({k: ("" if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()})
    return ["## The pretrained regime (ImageNet MobileNetV2) against the paper's ImageNet ResNet18", "",
            "Test values are mean ± 95 % CI over seeds on the fixed BUSI split (validation selection); *best val* is "
            "the best validation value over the stage-2 epochs of the same runs (validation split only: where the "
            "selection looks, an upper estimate); *CV* pools the out-of-fold predictions of the 5-fold "
            "cross-validation over every BUSI image (each fold's seeds averaged per image). The paper's rows are its "
            "reported ImageNet ResNet18 at 256 px (selection: validation accuracy per the paper's text, the test set in "
            "the authors' released train.py). Learning curves: `figures/fig_pretraining_learning_curves.png`." + choice_text,
            "", reporting.markdown_table(pd.DataFrame(rows)), ""]


def label_conflict_section(study: Study) -> list[str]:
    """Issue 29: the policy on same-scan opposite-label twins and which committed runs trained with one."""
    from lanet_core.data.conflicts import conflict_exposure, read_label_conflicts
    from lanet_core.data.sources import load_manifest

    conflicts = read_label_conflicts()
    if conflicts.empty:
        return []
    fixed = conflict_exposure(load_manifest(study.profile.dataset("busi"))[0], conflicts)
    exposed: dict[str, bool] = {}  # manifest -> a pair member in its train split

    def trains_with_a_twin(manifest: str) -> bool:
        if manifest not in exposed:
            rows = load_manifest(str(project_root() / manifest))[0]
            exposed[manifest] = bool(conflict_exposure(rows, conflicts)["trained_with"].any())
        return exposed[manifest]

    manifests = [str(read_provenance(d.parent).get("manifest", ""))
                 for d in sorted((study.profile.output / "runs").glob("*/metrics.json"))]
    busi = [m for m in manifests if Path(m).name.startswith("busi") and (project_root() / m).is_file()]
    runs, n_with = len(busi), sum(trains_with_a_twin(m) for m in busi)
    return ["## Same-scan opposite-label twins", "",
            f"BUSI holds {len(conflicts) // 2} pairs of images of one scan (pHash distance <= 6, byte-identical "
            "included) labelled once benign and once malignant (`data_manifests/busi_label_conflicts.csv`, written by "
            "`lanet prepare busi`). Policy (`lanet_core/data/conflicts.py`): their truth is unknown, so both members "
            "are left out of every evaluation that can leave them out without retraining: the leak-free companions "
            "of the fixed split and every cross-validation table and `cv_` claim. The committed manifests keep them "
            "in training (changing a manifest changes every run's identity): on the fixed split the pairs sit as "
            "follows, and " f"{n_with} of the {runs} committed BUSI runs trained with at least one member of a pair "
            "(the fixed-split test images `malignant (77)` and `malignant (145)` have their opposite-label twin in "
            "training or dropped from it).", "", reporting.markdown_table(fixed), ""]


def changed_verdicts(claims: pd.DataFrame) -> pd.DataFrame:
    """Issue 27: the cv_ claims whose verdict differs between the corrected repeated k-fold test (with retraining,
    the verdict) and the per-image test alone (given these trained models, the rule before issue 27)."""
    if claims.empty or "verdict_given_models" not in claims:
        return pd.DataFrame()
    cv = claims[(claims["verdict_given_models"].fillna("").astype(str) != "")
                & ~claims["verdict"].map(verdict_kind).isin([NOT_JUDGED, "not run"])]  # not a change of the test
    changed = cv.loc[np.array([verdict_kind(a) != verdict_kind(b) for a, b in zip(cv["verdict"], cv["verdict_given_models"])],
                              dtype=bool)]  # an empty list would select no columns, not no rows
    return pd.DataFrame({"claim": changed["paper"], "given these trained models (per image)": changed["verdict_given_models"],
                         "with retraining (the verdict)": changed["verdict"]}).reset_index(drop=True)


def _changed_verdicts_md(claims: pd.DataFrame) -> list[str]:
    changed = changed_verdicts(claims)
    if changed.empty:
        return []
    return ["Cross-validated verdicts that the training-variance test changed (issue 27): the per-image tests ask "
            "whether these trained networks differ on these images; the corrected repeated k-fold t-test asks whether "
            "training the method gives a better classifier, so its interval includes the run-to-run spread (seed SD "
            "of accuracy ~3 points, `tables/hardware_check.csv`) and is wider. An inconclusive verdict states the "
            "largest effect the data still allow. The same claims judged by the per-image tests alone would tally "
            f"{claims_tally(claims, given_models=True)}.", "", reporting.markdown_table(changed), ""]


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
        f"Compute, measured: {hours:.1f} hours of training and evaluation over {n_runs} finished runs (sum of "
        "per-run wall times from `runs/*/provenance.json`); per experiment and per device in the Hardware section "
        f"below. Intervals in every table: mean ± 95 % CI; {CLIPPED_NOTE}.",
        "",
        *_unfinished_md(unfinished_experiments(study), study.profile.name),
        *_hardware_section(by_device, check),
        "## Headline (BUSI, fully labelled, mean ± 95 % CI over seeds; paper: 256 px, ImageNet; its text selects on "
        "validation accuracy, the authors' released train.py on the test set)",
        "",
        reporting.display_markdown(reporting.display_table(headline)) if len(headline) else "(no runs yet)",
        "",
        *label_conflict_section(study),
        *resolution_section(study),
        *pretrained_section(study),
        "## The paper's claims, checked",
        "",
        "Verdict rule: reproduced = our 95 % CI of the difference lies on the paper's side; contradicted = on the "
        "other side; inconclusive = the CI includes 0, and then the verdict states the largest effect the data still "
        "allow. Fixed-split claims use the two-sided Welch CI over seeds (the same test as the stars in every "
        "table); cross-validated claims (`cv_` over BUSI's folds, `pcv` over BUS-BRA's official folds) use the "
        "corrected repeated k-fold t-test over the (fold, seed) runs, whose CI includes training variance "
        "(docs/statistics.md), with the paired tests over the out-of-fold images that both arms scored (exact "
        "McNemar, DeLong, paired t: given these trained models; each claim's image count is in its evidence) "
        "beside it. A \"not better\" claim needs an equivalence margin declared in advance. Not judged, outside the "
        "tally: a claim whose comparator collapsed (every run predicts one class) or whose arms were trained on "
        "different devices (CPU and GPU: a GPU retrain of a CPU run differs by several points, see the hardware "
        "check). Margins: "
        f"({', '.join(f'{k} {v * reporting.metric_format(k).scale:g}' for k, v in EQUIVALENCE_MARGINS.items())}).",
        "",
        f"**Tally: {claims_tally(claims)}**" if len(claims) else "",
        "",
        *_changed_verdicts_md(claims),
        reporting.display_markdown(reporting.display_table(claims[["where", "paper", "evidence", "verdict"]]))
        if len(claims) else "",
        "",
        "## Tables and figures",
        "",
    ]
    for title, table, fig in table_index(study.profile):
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
    """Main-backbone LA-Net and the baselines on BUSI: accuracy, AUC, F1 and IoU, with the paper's values. Dice (nearly
    a monotone function of IoU) is left to Table 6 (``table6_busi_localisation_vs_paper``): with it, ours and the
    paper's "mean ± CI" of five metrics do not fit a notebook's output area (968 px) without wrapping."""
    from lanet_core.study.notebook import with_paper

    runs = study.experiment("fully_labelled").runs()
    if runs.empty:
        return runs
    metrics = ["accuracy", "auc", "f1_macro", "iou"]
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
    loc = with_paper(ours, "T2", ["iou"], size="256")
    merged = cls.merge(loc, on="method", how="left")
    return merged
