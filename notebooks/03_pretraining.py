# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version,-jupytext.text_representation.format_version
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python (lanet)
#     language: python
#     name: lanet
# ---

# %% [markdown]
# # ImageNet pretraining vs training from scratch (MobileNetV2)
#
# The paper's feature extractors are ImageNet-pretrained ResNets, which cannot be downloaded on these
# machines. The one ImageNet classifier available offline is a quantised Keras MobileNetV2 (TFLite), converted
# by `lanet convert-weights` into timm's `mobilenetv2_100` with BatchNorm folded into the convolutions
# (docs/pretrained_weights.md). Two fine-tuning regimes:
#
# * **BN folded + frozen** (128 px, lr 1e-4, the scratch runs' schedule): the converted network kept
#   normalisation-free, as first run; at lr 1e-3 it collapsed to constant predictions.
# * **BN rebuilt** (224 px, ImageNet's resolution, the paper's lr 1e-3 for every parameter, half the schedule):
#   each folded BatchNorm rebuilt from the training images' statistics so the network computes exactly the
#   pretrained function at initialisation, then trains normally (`model.bn_rebuild`); the folded convolutions
#   back at unit-variance scale; the plain classifier's new head with PyTorch's fan-in init
#   (`model.head_init: torch`; timm's 1000-class init gave initial logits up to ±16).
#
# Scratch runs (MobileNetV2 here, ResNet18 from `02_fully_labelled`) and the paper's ImageNet ResNet18 (256 px)
# complete the table. Where the TFLite file is absent, only the scratch rows exist.

# %% tags=["parameters"]
profile: str = "cpu"  # cpu: the committed results | smoke | paper (configs/profiles/<name>.yaml)
train: bool = False  # True: train the missing runs first (hours on a CPU); False: render the records

# %%
import pandas as pd

from lanet_core.reporting import display_columns
from lanet_core.study import pretraining
from lanet_core.study.experiments import (fine_tuning_comparisons, fine_tuning_init, fine_tuning_method,
                                         pretrained_source, short)
from lanet_core.study.notebook import CLS_METRICS, LOC_METRICS, paper_numbers, setup

study = setup(profile, train)
res = study.experiment("pretraining")
runs = res.runs()
if len(runs):
    main = study.profile.main_size
    runs["model"] = runs["method"] + " (" + runs["init"] + [
        "" if s == main else f", {s} px" for s in runs["image_size"]] + ")"
runs.groupby(["model"], sort=False)[["accuracy", "auc", "iou"]].mean().round(3) if len(runs) else runs

# %% [markdown]
# ## Every model (mean ± 95 % CI over seeds; stars vs LA-Net from scratch)

# %%
ref = next((m for m in runs.get("model", []) if "LA-Net (scratch)" in m), None)
table = study.comparison(runs.assign(method=runs.get("model")), CLS_METRICS + LOC_METRICS, ref, "pretraining_all")
table

# %% [markdown]
# ## Pretrained minus scratch, per model (BN folded + frozen, 128 px; Welch 95 % CI over seeds, two-sided p)

# %%
study.difference(runs, by="init", a="ImageNet", b="scratch", metrics=["accuracy", "auc", "f1_macro", "iou", "dice"],
                 name="pretraining_difference", group_cols=("method",))

# %% [markdown]
# ## BN rebuilt (224 px, lr 1e-3) minus BN folded + frozen (128 px, lr 1e-4), per model

# %%
study.difference(runs, by="init", a="ImageNet, BN rebuilt", b="ImageNet",
                 metrics=["accuracy", "auc", "f1_macro", "iou", "dice"], name="pretraining_bn_rebuilt_difference",
                 group_cols=("method",),
                 caption="ImageNet MobileNetV2, BN rebuilt (224 px, lr 1e-3) minus BN folded and frozen (128 px, "
                         "lr 1e-4): mean difference with 95 % CI (Welch over seeds)")

# %% [markdown]
# ## The pretraining table: scratch R18, scratch MNV2, ImageNet MNV2 (both regimes), the paper's ImageNet R18

# %%
full = study.experiment("fully_labelled").runs()
labels = pretraining.regime_labels(study.profile)  # from the runs' configs: weights, BN mode, lr
regimes = pretraining.regime_runs(full, runs, labels)
if len(regimes):
    reg_table = study.table(pretraining.regimes_table(regimes, paper_numbers()), "pretraining_regimes",
        caption="Accuracy, AUC and lesion IoU per pretraining regime: ours mean ± 95 % CI over seeds (BUSI fixed "
                "split, validation selection); the paper's ImageNet ResNet18 at 256 px as reported (the authors' result CSVs method_effect_busi.csv and ablation_busi_size.csv)")
    display(reg_table[["regime", "kind", "input (px)", "seeds", "source", "accuracy", "auc", "iou"]])
    rebuilt, frozen, scratch = (labels.get(k, k) for k in (fine_tuning_init(), "ImageNet", "scratch"))
    variants = [(labels[a], labels[b]) for a, b in fine_tuning_comparisons(study.profile) if a in labels and b in labels]
    pairs = [(rebuilt, frozen), (rebuilt, scratch), (rebuilt, labels.get("R18", "R18"))] + variants  # e.g. lower fex lr
    diffs = study.table(pretraining.regime_differences(regimes, pairs, reg_table),
        "pretraining_regime_differences",
        caption="Differences between regimes per model kind: ours with a Welch 95 % CI over seeds and two-sided p; "
                "the paper minus ours as a difference of means only (the paper gives no per-seed values)")
    display(diffs[[c for c in ("kind", "comparison", "accuracy", "auc", "iou") if c in diffs]])

# %% [markdown]
# ## What limits the pretrained regime: validation records only
# The regimes differ in learning rate (1e-4 frozen-folded, 1e-3 everywhere, 1e-3 heads with the feature extractor
# at 1e-4) and schedule, so side by side they are a small lr sweep. Everything here is read from the runs'
# per-epoch validation records (`history.csv`); nothing from test. "Selected in last 2 epochs" counts runs whose
# validation accuracy was still improving when the schedule ended.

# %%
if len(regimes):
    full_res = study.experiment("fully_labelled")
    hist = pretraining.regime_history(pd.concat([res.history(), full_res.history()], ignore_index=True), regimes)
    val = study.table(pretraining.validation_summary(hist), "pretraining_validation_curves",
                      caption="Per regime, validation split only: best validation accuracy and AUC over "
                              "the stage-2 epochs (mean ± 95 % CI over seeds), the epoch validation accuracy selects, "
                              "runs selected in the last two epochs, last training loss")
    display(val[display_columns(val)])
    mnv2 = hist[hist["regime"].str.startswith(short(pretrained_source(study.profile)[0]))]
    if len(mnv2):
        study.figure(pretraining.learning_curves_figure(mnv2), "fig_pretraining_learning_curves")

# %%
if len(regimes):  # one row per regime, the three kinds side by side (tests: tables above)
    study.figure(pretraining.regimes_figure(regimes, conditions=study.conditions(regimes)), "fig_pretraining")

# %% [markdown]
# ## Grad-CAM of the ImageNet MobileNetV2 models with rebuilt BN (as `09_gradcam` for ResNet18), per regime

# %%
cams = res.gradcam()
inits = [k for k in labels if k.startswith(fine_tuning_init())]  # the main regime, then its variants
methods = [fine_tuning_method(study.profile, k) for k in ("lanet", "lanet_fine", "classifier")]  # MNV2+LA-Net, ...
loc = pretraining.gradcam_by_regime(cams, methods, labels, inits)
if len(loc):
    loc = study.table(loc, "pretraining_gradcam",
                      caption="Grad-CAM of the predicted class, ImageNet MobileNetV2 with rebuilt BN (224 px), per "
                              "fine-tuning regime: share of CAM energy inside the true lesion and pointing-game hit "
                              "rate, mean ± 95 % CI over seeds; stars: two-sided Welch t-test vs the first row of "
                              "its regime")
    display(loc[display_columns(loc)])
else:
    print("Grad-CAM records of the BN-rebuilt MobileNetV2 runs are missing")
