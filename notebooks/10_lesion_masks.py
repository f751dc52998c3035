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
# # Predicted lesion masks (paper Fig. 5) and the binarisation threshold
#
# The lesion maps of LA-Net, U-Net and RMTL from the fully-labelled experiment (`02_fully_labelled`), for the
# same test images (both classes) and the first seed: the image with the true lesion contour (green), and
# each model's lesion probability map upsampled bilinearly to the input size (as the IoU is scored), with the
# true contour (dashed white) and the contour of its 0.5 threshold (magenta). Everything comes from the
# stored run records (`lesion_maps.npz`, at most 64 x 64 px per map), so the figure needs no checkpoint.
#
# IoU is reported at the fixed threshold 0.5 (as in the paper); the sweep below shows how much each method's
# mean IoU depends on that choice (mean per-image IoU over the test images with masks, mean ± 95 % CI over
# seeds). A method whose maps are poorly calibrated peaks far from 0.5. Every run also records a threshold
# tuned on its *validation* split (maximising validation IoU; never the test images), reported beside 0.5.
#
# **Resolution ceilings.** LA-Net's lesion map is the input divided by the fusion stride: 4x4 at 128 px for the
# paper's stride 32. The *oracle* below predicts each image's training target exactly (the mask averaged
# over each map cell) and is scored as a model is (bilinear upsampling, threshold 0.5): no model with that
# map can exceed it. **LA-Net-fine** fuses at stride 8 (16x16 at 128 px); its training target (area
# average, max-pooled cell, the authors' bilinear sampling) is chosen on validation IoU below.

# %% tags=["parameters"]
profile: str = "cpu"  # cpu: the committed results | smoke | paper (configs/profiles/<name>.yaml)
train: bool = False  # True: train the missing runs first (hours on a CPU); False: render the records

# %%
import pandas as pd

from lanet_core.study import figures
from lanet_core.study.experiments import FINE, method_name
from lanet_core.study.notebook import setup

study = setup(profile, train)
res = study.experiment("fully_labelled")
backbone = study.profile.main_backbone
lanet, unet, rmtl = method_name("lanet", backbone), method_name("unet", backbone), method_name("rmtl", backbone)

# %% [markdown]
# ## Examples (Fig. 5)

# %%
fine = lanet + FINE  # LA-Net with the stride-8 lesion map (beyond the paper), where the profile has it
fig, ids = figures.examples_figure(
    res, {lanet: (lanet, "lesion"), fine: (fine, "lesion"), unet: (unet, "lesion"), rmtl: (rmtl, "lesion")},
    n=4, contour_columns=[lanet, fine, unet, rmtl],
)
if fig is not None:
    study.figure(fig, "fig5_lesion_masks")
print("examples:", ids or "none (no finished run with lesion maps)")

# %% [markdown]
# ## IoU vs threshold

# %% [markdown]
# ## Oracle ceilings of the lesion map (test split, threshold 0.5)

# %%
from lanet_core.ceilings import ceiling_table

ceil = ceiling_table(study.profile.dataset("busi"), study.profile.sizes, geometries="both")
study.table(ceil, "lesion_map_ceilings",
            caption="Oracle IoU/Dice of a perfect predictor of the training target, per image size, lesion-map size, "
                    "target and upsampling geometry (align_corners); oracle_empty = test images it must predict empty")
ceil.pivot_table(index=["image_size", "map"], columns=["target", "align_corners"], values="oracle_iou", sort=False).round(3)

# %% [markdown]
# ## Localisation with ceilings and validation-tuned thresholds

# %%
from lanet_core.study.notebook import reference_method

runs = res.runs()
loc = study.localisation(runs, reference_method(runs) or lanet, "lesion_localisation_ceilings")
loc[[c for c in ("method", "n", "lesion_map", "iou_ceiling", "iou", "iou_sig", "iou_tuned", "threshold (val)") if c in loc]] if len(loc) else loc

# %% [markdown]
# ## Training target of the fine lesion map (chosen on validation IoU)
# LA-Net-fine trained with each target on fully-labelled BUSI. The choice reads only validation IoU (at 0.5 and at
# the validation-tuned threshold); test IoU is shown for the record.

# %%
tgt = study.experiment("lesion_target").runs()
if len(tgt):
    cols = ["val_iou", "val_iou_tuned", "iou", "iou_tuned", "accuracy", "auc"]
    target_table = figures.target_table(tgt, cols)
    study.table(target_table, "lesion_target_comparison",
                caption="LA-Net-fine training targets: validation IoU (the selection criterion) and test metrics, mean ± 95 % CI over seeds")
    display_target = target_table[[c for c in target_table.columns if not c.endswith(("_mean", "_half_width"))]]
else:
    display_target = tgt
display_target

# %% [markdown]
# ## Model selection of the joint model: validation accuracy (paper) vs mean of validation AUC and IoU
# Every joint run keeps the best epoch of both criteria; the run's result uses `train.select_metric`
# (accuracy, as the paper), the other is reported beside it (never replacing it).

# %%
both = pd.concat([runs, tgt], ignore_index=True).drop_duplicates("run") if len(tgt) else runs  # a run can serve both experiments
if "target" in both:  # LA-Net-fine trained with each target: one row per (method, target)
    both["method"] = [m if not isinstance(t, str) else f"{m} ({t} target)" for m, t in zip(both["method"], both["target"])]
sel = figures.selection_table(both)
study.table(sel, "selection_criterion_comparison",
            caption="Test metrics of the epoch selected by validation accuracy vs by mean(validation AUC, IoU), mean ± "
                    "95 % CI over seeds; difference = second minus first over the same runs (points for %, IoU as a "
                    "fraction)")
sel

# %%
sweep = figures.iou_threshold_sweep(res.per_image())
order = [lanet, unet, rmtl] + sorted(set(sweep["method"]) - {lanet, unet, rmtl}) if len(sweep) else []
table = study.table(figures.sweep_table(sweep, order), "iou_threshold_sweep",
                    caption="Mean per-image IoU at each lesion-map threshold, mean ± 95 % CI over seeds; first row: "
                            "seeds per method; last row: the threshold with the highest mean test IoU (descriptive, "
                            "never used to select)")
table[[c for c in table.columns if not c.endswith("_mean")]] if len(table) else table

# %%
if len(sweep):
    study.figure(figures.sweep_figure(sweep, order, threshold=0.5,
                                      conditions=figures.experiment_conditions(res, list(sweep["method"].unique()))),
                 "fig_iou_threshold_sweep")
