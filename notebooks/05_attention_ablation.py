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
# # Attention-module ablation (Tables 7-8)
#
# LA-Net with each attention module removed: without channel attention (CAM), without spatial attention
# (SAM) in every CBAM, and without the mask-attention module (MAM: the classifier then sees f_n alone while
# LA-Net is still trained by the localisation loss). The modules are really removed (the authors' release
# ignored the CAM/SAM flags). Paper: removing MAM hurt classification most; removing CAM or SAM hurt
# localisation.

# %% tags=["parameters"]
profile: str = "smoke"  # smoke | cpu | paper (configs/profiles/<name>.yaml)
train: bool = True  # False: render from finished run records only

# %%
from lanet_core.study.notebook import CLS_METRICS, LOC_METRICS, reference_method, setup, with_paper

study = setup(profile, train)
res = study.experiment("attention_ablation")
runs = res.runs()
reference = reference_method(runs)

# %%
cls = study.comparison(runs, CLS_METRICS, reference, "table7_busi_attention_classification",
                       caption="BUSI, attention ablation; stars vs the full model")
study.table(with_paper(cls, "T7", CLS_METRICS, size="256"), "table7_busi_attention_classification_vs_paper")

# %%
loc = study.comparison(runs, LOC_METRICS, reference, "table8_busi_attention_localisation")
study.table(with_paper(loc, "T8", LOC_METRICS, size="256"), "table8_busi_attention_localisation_vs_paper")

# %%
study.bootstrap(res, reference, "table7_8_attention_paired_bootstrap")

# %%
study.leak_free(res, CLS_METRICS + LOC_METRICS, reference, "table7_8_attention_leak_free")

# %%
study.bars(runs, ["accuracy", "auc", "iou", "dice"], reference, "fig_attention_ablation",
           title="Attention ablation on BUSI")
