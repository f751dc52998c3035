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
# # Input size (Figs. 10-11)
#
# LA-Net at two input sizes (the profile's `sizes`: 128 vs 256 px on CPU, 256 vs 512 px in the paper).
# The lesion map has stride 32, so the grid grows from 4x4 to 8x8 (128 -> 256) or 8x8 to 16x16
# (256 -> 512). Paper: larger inputs localise better (IoU +0.13 to +0.16 on BUSI, 256 -> 512);
# classification flat or slightly lower.

# %% tags=["parameters"]
profile: str = "cpu"  # cpu: the committed results | smoke | paper (configs/profiles/<name>.yaml)
train: bool = False  # True: train the missing runs first (hours on a CPU); False: render the records

# %%
from lanet_core.study.notebook import CLS_METRICS, LOC_METRICS, setup

study = setup(profile, train)
res = study.experiment("input_size")
runs = res.runs()
if len(runs):
    runs["model"] = runs["method"] + " @" + runs["image_size"].astype(str)
runs.groupby("image_size")[["accuracy", "auc", "iou", "dice"]].agg(["mean", "std"]).round(3) if len(runs) else runs

# %%
ref = runs["model"].iloc[0] if len(runs) else None
study.comparison(runs.assign(method=runs.get("model")), CLS_METRICS + LOC_METRICS, ref, "fig10_11_input_size")

# %% [markdown]
# Larger minus smaller input (Welch 95 % CI over seeds, two-sided p):

# %%
sizes = sorted(set(runs["image_size"])) if len(runs) else []
if len(sizes) >= 2:
    study.difference(runs, by="image_size", a=sizes[-1], b=sizes[0], metrics=["accuracy", "auc", "f1_macro", "iou", "dice"],
                     name="input_size_difference", group_cols=("method",))

# %%
study.lines(runs, "image_size", ["accuracy", "auc"], "fig10_input_size_classification", title="Classification vs input size")
study.lines(runs, "image_size", ["iou", "dice"], "fig11_input_size_localisation", title="Localisation vs input size")
