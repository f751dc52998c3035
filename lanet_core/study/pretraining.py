"""The pretraining table (issue 13): scratch ResNet18, scratch MobileNetV2, the converted ImageNet MobileNetV2
fine-tuned with frozen folded BN (128 px, lr 1e-4) and with rebuilt BN (224 px, lr 1e-3), and the paper's
ImageNet ResNet18 (256 px, its reported mean ± 95 % CI), side by side, with Welch differences between ours.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from lanet_core import reporting
from lanet_core.models.geometry import PAPER_FUSION_STRIDE
from lanet_core.stats import mean_ci

KINDS = ("vanilla", "LA-Net", "LA-Net-fine")
PAPER_REGIME = "R18, ImageNet (paper), 100 epochs"  # the paper: "trained with the training subset for 100 epochs"
METRICS = ("accuracy", "auc", "iou")


def method_kind(method: str) -> str:
    """``"R18+LA-Net-fine"`` -> ``"LA-Net-fine"``, ``"MNV2+LA-Net"`` -> ``"LA-Net"``, ``"R18"`` -> ``"vanilla"``."""
    tail = method.split("+", 1)[1] if "+" in method else ""
    return tail if tail in KINDS else ("vanilla" if not tail else tail)


def _lr(lr: float) -> str:
    """``1e-4`` for 0.0001, ``2.5e-4`` for 0.00025."""
    mant, exp = f"{lr:.2e}".split("e")
    return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"


def _schedule(specs) -> str:
    """``"4+12 epochs"``: the stage-1 and stage-2 epochs of a regime (stage 1 from its LA-Net runs; the single-task
    baselines have none)."""
    s1 = max(int(sp.config["train"].get("stage1_epochs", 0)) for sp in specs)
    s2 = max(int(sp.config["train"]["stage2_epochs"]) for sp in specs)
    return f"{s1}+{s2} epochs"


def regime_labels(profile) -> dict[str, str]:
    """The regime label of each row group, read from the configs the profile's experiments resolve to:
    ``{"R18": "R18, scratch, 8+24 epochs", "<init group>": "MNV2, ImageNet, BN folded+frozen, lr 1e-4, 8+24
    epochs", ...}`` (weights, BatchNorm mode, lr and schedule as the runs use them, so another profile gets its
    own, true labels, and two regimes that differ only in their schedule stay apart)."""
    from lanet_core.study.experiments import EXPERIMENTS, method_name

    out: dict[str, str] = {}
    r18, lanet = method_name("classifier", profile.main_backbone), method_name("lanet", profile.main_backbone)
    for spec in EXPERIMENTS["fully_labelled"](profile):
        if spec.method == lanet:  # always in the experiment (the vanilla row depends on the baselines list)
            w = spec.config["model"]["weights"]
            out["R18"] = f"{r18}, " + ("scratch" if w == "none" else "ImageNet") + f", {_schedule([spec])}"
            break
    by_init: dict[str, list] = {}
    for spec in EXPERIMENTS["pretraining"](profile):
        by_init.setdefault(spec.group.get("init"), []).append(spec)
    for init, specs in by_init.items():
        spec = specs[0]
        m, t = spec.config["model"], spec.config["train"]
        bb = spec.method.split("+")[0]
        if m["weights"] == "none":
            label = f"{bb}, scratch"
        else:
            bn = "BN rebuilt" if m.get("bn_rebuild") else "BN folded+frozen"
            scale = float(t.get("backbone_lr_scale", 1.0))
            fex = f" (feature extractor {_lr(t['lr'] * scale)})" if scale != 1.0 else ""
            label = f"{bb}, ImageNet, {bn}, lr {_lr(t['lr'])}{fex}"
        out[init] = f"{label}, {_schedule(specs)}"
    return out


def regime_runs(fully_labelled: pd.DataFrame, pretraining: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """One runs table with a ``regime`` column (``labels`` from :func:`regime_labels`): the main backbone's
    fully-labelled BUSI runs and each ``init`` group of the pretraining experiment. Keeps vanilla, LA-Net and
    LA-Net-fine rows; ``kind`` names which."""
    parts = []
    if len(fully_labelled) and "R18" in labels:
        base = labels["R18"].split(",")[0]
        r18 = fully_labelled[fully_labelled["method"].isin([base, f"{base}+LA-Net", f"{base}+LA-Net-fine"])].copy()
        r18["regime"] = labels["R18"]
        parts.append(r18)
    if len(pretraining):
        pre = pretraining.copy()
        pre["regime"] = pre["init"].map(labels).fillna(pre["init"])
        parts.append(pre)
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    out["kind"] = run_kinds(out)
    return out


def run_kinds(runs: pd.DataFrame) -> pd.Series:
    """vanilla / LA-Net / LA-Net-fine of each run, from its recorded fields (``arch``, ``fusion_stride``:
    :func:`lanet_core.study.records.run_fields`); frames without them fall back to the method label."""
    if not {"arch", "fusion_stride"} <= set(runs):
        return runs["method"].map(method_kind)
    kinds = np.where(runs["arch"] != "lanet", "vanilla", np.where(runs["fusion_stride"] < PAPER_FUSION_STRIDE, "LA-Net-fine", "LA-Net"))
    return pd.Series(kinds, index=runs.index)


def regimes_table(runs: pd.DataFrame, paper: pd.DataFrame, paper_size: str = "256") -> pd.DataFrame:
    """Rows: regime x kind (ours: mean ± 95 % CI over seeds, n seeds, input size; the paper's ImageNet R18 rows
    from its tables at ``paper_size`` px). Columns: the formatted metric, plus ``<metric>_mean``."""
    rows = []
    for (regime, kind), df in runs.groupby(["regime", "kind"], sort=False):
        size = int(df["image_size"].iloc[0]) if "image_size" in df and df["image_size"].notna().any() else None
        row: dict[str, object] = {"regime": regime, "kind": kind, "input (px)": size, "seeds": len(df), "source": "ours"}
        for m in METRICS:
            vals = df[m].dropna() if m in df else pd.Series(dtype=float)
            if len(vals):
                ci = mean_ci(vals)
                row[m] = reporting.format_metric_ci(m, ci.mean, ci.half_width)
                row[f"{m}_mean"] = ci.mean
        rows.append(row)
    p = paper[(paper["image_size"].astype(str) == paper_size) & (paper["dataset"] == "busi")] if len(paper) else paper
    for kind, method in (("vanilla", "R18"), ("LA-Net", "R18+LA-Net")):
        row = {"regime": PAPER_REGIME, "kind": kind, "input (px)": int(paper_size), "seeds": 3,
               "source": "paper"}
        for m in METRICS:
            hit = p[(p["method"] == method) & (p["metric"] == m)] if len(p) else p
            if len(hit):
                mean, ci = float(hit["mean"].iloc[0]), float(hit["ci"].iloc[0])
                row[m] = reporting.format_metric_ci(m, mean, ci)
                row[f"{m}_mean"] = mean
        rows.append(row)
    order = {k: i for i, k in enumerate(KINDS)}
    out = pd.DataFrame(rows)
    out["_k"] = out["kind"].map(order)
    return out.sort_values(["_k"], kind="stable").drop(columns="_k").reset_index(drop=True)


def regime_differences(runs: pd.DataFrame, pairs: Sequence[tuple[str, str]], paper_table: pd.DataFrame | None = None
                       ) -> pd.DataFrame:
    """Per kind and pair ``(a, b)`` of regimes: ``a - b`` of each metric with a Welch 95 % CI over seeds and
    two-sided p (:func:`lanet_core.study.notebook.diff_ci`). With ``paper_table`` (from :func:`regimes_table`),
    also the paper's ImageNet R18 minus each of our regimes (difference of means only: the paper gives no
    per-seed values)."""
    from lanet_core.study.notebook import diff_ci

    rows = []
    for kind in KINDS:
        sub = runs[runs["kind"] == kind]
        for a, b in pairs:
            xa, xb = sub[sub["regime"] == a], sub[sub["regime"] == b]
            if xa.empty or xb.empty:
                continue
            row: dict[str, object] = {"kind": kind, "comparison": f"{a}  minus  {b}"}
            for m in METRICS:
                va, vb = xa[m].dropna().to_numpy(float), xb[m].dropna().to_numpy(float)
                if len(va) and len(vb):
                    row.update(diff_ci(va, vb, m))
            rows.append(row)
        if paper_table is not None and len(paper_table):
            ours = paper_table[(paper_table["kind"] == kind) & (paper_table["source"] == "ours")]
            theirs = paper_table[(paper_table["kind"] == kind) & (paper_table["source"] == "paper")]
            for _, o in ours.iterrows():
                if theirs.empty:
                    continue
                row = {"kind": kind, "comparison": f"{PAPER_REGIME}  minus  {o['regime']}"}
                for m in METRICS:
                    pm, om = theirs.iloc[0].get(f"{m}_mean"), o.get(f"{m}_mean")
                    if pm is not None and om is not None and np.isfinite(pm) and np.isfinite(om):
                        fmt = reporting.metric_format(m)
                        row[m] = f"{(pm - om) * fmt.scale:+.{fmt.digits}f} (paper: no per-seed values)"
                        row[f"{m}_diff"] = pm - om
                rows.append(row)
    return pd.DataFrame(rows)


# ---- what limits the pretrained regime: validation-only evidence from the runs' per-epoch histories

CURVE_METRICS = {"train_loss": "training loss", "val_accuracy": "validation accuracy", "val_auc": "validation AUC"}


def gradcam_by_regime(cams: pd.DataFrame, methods: Sequence[str], labels: dict[str, str],
                      inits: Sequence[str]) -> pd.DataFrame:
    """Grad-CAM localisation per fine-tuning regime: for each ``init`` group in ``inits`` (e.g. BN rebuilt at lr
    1e-3, and with the feature extractor at 1e-4), the CAM energy in the lesion and pointing-game hit rate of
    ``methods`` (mean ± 95 % CI over seeds, stars vs the first of ``methods`` the regime has), scored on the test
    images every method of that regime scored. ``cams``: ``res.gradcam()`` rows with an ``init`` column; the
    ``regime`` column holds ``labels[init]``. Regimes with fewer than two of ``methods`` are left out; no ``init``
    column (no fine-tuning runs) gives an empty frame."""
    from lanet_core.study import figures

    if cams.empty or "init" not in cams:
        return pd.DataFrame()
    parts = []
    for init in inits:
        df = cams[cams["init"] == init]
        order = [m for m in methods if m in set(df["method"])]
        if len(order) < 2:
            continue
        tab = figures.gradcam_localisation_table(figures.gradcam_per_image(df, order), order[0], order)
        if tab.empty:
            continue
        tab.insert(0, "regime", labels.get(init, init))
        parts.append(tab)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def regime_history(history: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The stage-2 (classification) epochs of each run in ``runs`` (a :func:`regime_runs` table: ``run``,
    ``regime``, ``kind``), with those columns joined onto ``history`` (:meth:`ExperimentResults.history`)."""
    if history.empty or runs.empty:
        return pd.DataFrame()
    h = history[history["stage"] == "stage2"]
    return h.merge(runs[["run", "regime", "kind"]], on="run", how="inner")


def validation_summary(hist: pd.DataFrame) -> pd.DataFrame:
    """Per regime and kind, from validation records only (the learning-rate regimes side by side, nothing read
    from test): best validation accuracy and AUC over the stage-2 epochs (mean ± 95 % CI over seeds), the epoch
    the paper's criterion (validation accuracy) selects, how many runs select one of the last two epochs (a
    schedule still improving when it stops), and the last epoch's training loss."""
    rows = []
    for (regime, kind), df in hist.groupby(["regime", "kind"], sort=False):
        per_run = df.groupby("run").agg(best_acc=("val_accuracy", "max"), best_auc=("val_auc", "max"),
                                        n_epochs=("epoch", "max"), last_loss=("train_loss", "last"))
        sel = df[df["selected"] == 1].groupby("run")["epoch"].max()  # the last improvement = the selected epoch
        per_run["selected_epoch"] = sel
        row: dict[str, object] = {"regime": regime, "kind": kind, "seeds": len(per_run),
                                  "stage-2 epochs": int(per_run["n_epochs"].max())}
        for col, metric in (("best_acc", "accuracy"), ("best_auc", "auc")):
            ci = mean_ci(per_run[col])
            row[f"best val {metric}"] = reporting.format_metric_ci(metric, ci.mean, ci.half_width)
            row[f"best val {metric}_mean"] = ci.mean  # numeric companion: CSV only (display_columns)
        row["selected epoch (mean)"] = round(float(per_run["selected_epoch"].mean()), 1)
        late = int((per_run["selected_epoch"] >= per_run["n_epochs"] - 1).sum())
        row["selected in last 2 epochs"] = f"{late}/{len(per_run)}"
        row["last train loss"] = round(float(per_run["last_loss"].mean()), 3)
        rows.append(row)
    return pd.DataFrame(rows)


#: Abbreviations of the two-line regime labels in figures (the key in the figure header spells them out).
_SHORT = (("feature extractor", "fex"), (" epochs", " ep"), ("BN folded+frozen", "BN folded + frozen"))


def short_regime(regime: str, size: int | None = None) -> str:
    """Two-line figure label of a :func:`regime_labels` label: backbone, initialisation and BN on the first
    line; lr, schedule and input size on the second (``"feature extractor"`` -> ``"fex"``, ``"epochs"`` ->
    ``"ep"``)."""
    for long, short in _SHORT:
        regime = regime.replace(long, short)
    parts = [p.strip() for p in regime.split(", ")]
    head = 2 + int(len(parts) > 2 and parts[2].startswith("BN"))
    first, rest = ", ".join(parts[:head]), parts[head:]
    if size is not None and np.isfinite(size):
        rest.append(f"{int(size)} px")
    return first + ("\n" + ", ".join(rest) if rest else "")


def regimes_figure(regimes: pd.DataFrame, metrics: Sequence[str] = METRICS, conditions: str | None = None):
    """Dot plot of the pretraining regimes (:func:`regime_runs`): one row per regime (two-line labels, shared by
    every panel), one panel per metric (a), (b), ...; per row the vanilla classifier, LA-Net and LA-Net-fine side
    by side (colour and marker per kind), each its mean with a 95 % t-CI over seeds. 7.2 in wide. Returns the
    figure, or None without runs."""
    from matplotlib.lines import Line2D

    metrics = [m for m in metrics if m in regimes and regimes[m].notna().any()]
    if regimes.empty or not metrics:
        return None
    order = list(dict.fromkeys(regimes["regime"]))
    sizes = regimes.groupby("regime", sort=False)["image_size"].first() if "image_size" in regimes else {}
    rows = [short_regime(r, sizes.get(r) if len(sizes) else None) for r in order]
    kinds = [k for k in KINDS if k in set(regimes["kind"])]
    style = {k: (reporting.method_color("R18" + ("" if k == "vanilla" else f"+{k}")),
                 reporting.method_marker("R18" + ("" if k == "vanilla" else f"+{k}"))) for k in kinds}
    with reporting.plot_context():
        fig, axes = reporting.journal_figure("double", 1.6 + 0.36 * len(order), 1, len(metrics), sharey=True)
        for ax, m in zip(axes[0], metrics):
            scale = reporting.metric_format(m).scale
            series = []
            for k in kinds:
                mean, low, high = [], [], []
                for r in order:
                    ci = mean_ci(regimes.loc[(regimes["regime"] == r) & (regimes["kind"] == k), m].dropna())
                    mean.append(ci.mean * scale if ci.n else np.nan)
                    hw = ci.half_width * scale if ci.n > 1 else np.nan
                    low.append(max(ci.mean * scale - hw, 0.0) if np.isfinite(hw) else np.nan)
                    high.append(min(ci.mean * scale + hw, scale) if np.isfinite(hw) else np.nan)
                series.append({"label": k, "color": style[k][0], "marker": style[k][1], "mean": mean, "low": low,
                               "high": high})
            reporting.dot_ci_panel(ax, rows, series, m)
            ax.set_title(reporting.metric_title(m))
            lo, hi = ax.get_xlim()
            ax.set_xlim(max(lo, 0.0), min(hi, scale))
        for ax in axes[0][1:]:
            ax.tick_params(axis="y", length=0)
        reporting.label_panels(axes[0])
        n = regimes.groupby(["regime", "kind"])["seed"].nunique() if "seed" in regimes else pd.Series(dtype=int)
        seeds = reporting.count_range(n) if len(n) else "?"
        key = (f"Points: mean; whiskers: 95 % t-CI over {seeds} seeds (clipped to the metric's range)"
               + ("; hollow: one seed, no CI" if len(n) and n.min() == 1 else "") + ". Rows: "
               "backbone, initialisation, BatchNorm; learning rate (fex: feature extractor), stage-1+stage-2 epochs "
               "(ep), input size. Tests: tables pretraining_all and pretraining_regime_differences")
        reporting.figure_header(fig, "Pretraining regimes", [key, conditions])
        handles = [Line2D([], [], color=style[k][0], marker=style[k][1], markersize=4, markeredgecolor="white",
                          markeredgewidth=0.5, linestyle="-", label="vanilla classifier" if k == "vanilla" else k)
                   for k in kinds]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    return fig


def learning_curves_figure(hist: pd.DataFrame, kinds: Sequence[str] = ("vanilla", "LA-Net"),
                           metrics: Sequence[str] = tuple(CURVE_METRICS)):
    """Stage-2 learning curves, one panel per kind (rows) and metric (columns), one line per regime (colour-blind
    safe colours and a marker each): mean over seeds, the faint band spans the seeds' minimum to maximum.
    Validation metrics only (no test). 7.2 in wide. Returns the figure."""
    kinds = [k for k in kinds if k in set(hist["kind"])]
    regimes = list(dict.fromkeys(hist["regime"]))
    colors = [reporting.OKABE_ITO[c] for c in ("blue", "vermillion", "bluish_green", "reddish_purple", "orange",
                                               "sky_blue", "black", "yellow")]
    markers = ("o", "s", "D", "^", "v", "P", "X", "h")
    look = {r: (colors[i % len(colors)], markers[i % len(markers)]) for i, r in enumerate(regimes)}
    with reporting.plot_context():
        fig, axes = reporting.journal_figure("double", 1.2 + 1.75 * len(kinds), len(kinds), len(metrics),
                                             sharex=True)
        for i, kind in enumerate(kinds):
            for j, metric in enumerate(metrics):
                ax = axes[i, j]
                for regime in regimes:
                    df = hist[(hist["kind"] == kind) & (hist["regime"] == regime)]
                    if df.empty or df[metric].isna().all():
                        continue
                    g = df.groupby("epoch")[metric]
                    mean = g.mean()
                    color, marker = look[regime]
                    ax.plot(mean.index, mean.to_numpy(), color=color, lw=1.0, marker=marker, markersize=3,
                            markevery=4, label=f"{regime} ({df['run'].nunique()} seeds)")
                    ax.fill_between(mean.index, g.min().to_numpy(), g.max().to_numpy(), color=color, alpha=0.1,
                                    lw=0)
                ax.set_title(f"{kind}: {CURVE_METRICS.get(metric, metric)}")
                if i == len(kinds) - 1:
                    ax.set_xlabel("Stage-2 epoch")
        reporting.label_panels(axes)
        merged: dict[str, object] = {}
        for ax in axes.ravel():
            for h, lab in zip(*ax.get_legend_handles_labels()):
                merged.setdefault(lab, h)
        fig.legend(list(merged.values()), list(merged), loc="outside lower center", ncol=1, frameon=False)
        reporting.figure_header(fig, "Stage-2 learning curves per regime",
                                ["Validation split only (no test data); line: mean over seeds, faint band: range "
                                 "over seeds"])
    return fig


def regime_choice_by_validation(val: pd.DataFrame, kinds: Sequence[str] = ("vanilla", "LA-Net"),
                                n_val: int | None = None) -> tuple[str | None, str]:
    """Issue 29: the regime the validation split picks (highest mean of ``best val accuracy`` over ``kinds``,
    from :func:`validation_summary`, nothing read from test) and one sentence ranking every regime that has all
    ``kinds``. ``n_val``: validation images, to say how many images the margins amount to."""
    if val.empty or "best val accuracy_mean" not in val:
        return None, ""
    sub = val[val["kind"].isin(kinds)]
    full = sub.groupby("regime")["kind"].nunique() == len(kinds)
    score = sub[sub["regime"].isin(full[full].index)].groupby("regime", sort=False)["best val accuracy_mean"].mean()
    if score.empty:
        return None, ""
    score = score.sort_values(ascending=False, kind="stable")
    ranked = "; ".join(f"{r} {100 * v:.1f}" for r, v in score.items())
    gap = 100 * (score.iloc[0] - score.iloc[1]) if len(score) > 1 else float("nan")
    per_image = f" (one validation image = {100 / n_val:.1f} points)" if n_val else ""
    return str(score.index[0]), (f"By validation accuracy (mean best value of the {' and '.join(kinds)} runs, %): "
                                 f"{ranked}; the top two differ by {gap:.1f} points{per_image}.")
