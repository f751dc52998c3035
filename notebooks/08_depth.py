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
# # Feature-extractor depth (Figs. 6-7)
#
# ResNet18 vs ResNet50 feature extractors for the vanilla classifier, RMTL and LA-Net on BUSI (the
# profile's `backbones`). Paper: LA-Net improves on the vanilla network with both depths; R50 generally
# better than R18; LA-Net localises better than RMTL on BUSI.

# %% tags=["parameters"]
profile: str = "cpu"  # cpu: the committed results | smoke | paper (configs/profiles/<name>.yaml)
train: bool = False  # True: train the missing runs first (hours on a CPU); False: render the records

# %%
from lanet_core.study.notebook import CLS_METRICS, LOC_METRICS, reference_method, setup

study = setup(profile, train)
res = study.experiment("depth")
runs = res.runs()
reference = reference_method(runs)
runs.groupby(["family", "backbone"])[["accuracy", "auc", "iou"]].mean().round(3) if len(runs) else runs

# %%
study.comparison(runs, CLS_METRICS + LOC_METRICS, reference, "fig6_7_depth")

# %% [markdown]
# Deeper minus shallower feature extractor, per model family (Welch 95 % CI over seeds):

# %%
bbs = list(dict.fromkeys(runs["backbone"])) if len(runs) else []
if len(bbs) >= 2:
    study.difference(runs, by="backbone", a=bbs[-1], b=bbs[0], metrics=["accuracy", "auc", "iou"],
                     name="depth_difference", group_cols=("family",))

# %%
study.bars(runs, ["accuracy", "auc"], reference, "fig6_depth_classification", title="Classification by depth")
study.bars(runs[runs["family"] != "Vanilla"] if len(runs) else runs, ["iou", "dice"], reference,
           "fig7_depth_localisation", title="Localisation by depth")
