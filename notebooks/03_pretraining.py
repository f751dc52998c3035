# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
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
# by `lanet convert-weights` into timm's `mobilenetv2_100` (BatchNorm folded into the convolutions, so the
# converted backbone keeps its normalisation frozen during fine-tuning; see docs/pretrained_weights.md).
# Here LA-Net and a plain classifier with that backbone are trained from the converted ImageNet weights and
# from scratch, everything else equal, to measure how much of a gap to the paper is pretraining.
# Where the TFLite file is absent, only the scratch rows exist.

# %% tags=["parameters"]
profile: str = "smoke"  # smoke | cpu | paper (configs/profiles/<name>.yaml)
train: bool = True  # False: render from finished run records only

# %%
from lanet_core.study.notebook import CLS_METRICS, LOC_METRICS, setup

study = setup(profile, train)
res = study.experiment("pretraining")
runs = res.runs()
if len(runs):
    runs["model"] = runs["method"] + " (" + runs["init"] + ")"
runs.groupby(["method", "init"])[["accuracy", "auc", "iou"]].mean().round(3) if len(runs) else runs

# %% [markdown]
# ## All four models (mean ± 95 % CI over seeds; stars vs LA-Net from scratch)

# %%
ref = next((m for m in runs.get("model", []) if "LA-Net (scratch)" in m), None)
table = study.comparison(runs.assign(method=runs.get("model")), CLS_METRICS + LOC_METRICS, ref, "pretraining_all")
table

# %% [markdown]
# ## Pretrained minus scratch, per model (Welch 95 % CI over seeds, two-sided p)

# %%
study.difference(runs, by="init", a="ImageNet", b="scratch", metrics=["accuracy", "auc", "f1_macro", "iou", "dice"],
                 name="pretraining_difference", group_cols=("method",))

# %%
study.bars(runs.assign(method=runs.get("model")), ["accuracy", "auc", "iou"], ref, "fig_pretraining",
           title="MobileNetV2: ImageNet (converted TFLite) vs scratch")
