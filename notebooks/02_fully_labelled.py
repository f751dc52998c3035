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
# # Fully-labelled comparison on BUSI (paper Tables 5 and 6)
#
# LA-Net and every baseline trained on the BUSI training split with all location labels, the authors' fixed
# 82-image test split, model selection on the seeded 15 % validation split. Classification metrics are
# macro-averaged over the two classes (as the authors reported); AUC from the softmax probability of
# malignant. Localisation: IoU / Dice per image at threshold 0.5 after bilinear upsampling of the lesion map,
# averaged over images (and at each run's validation-tuned threshold, beside the lesion map's oracle ceiling).
# Mean ± 95 % CI over seeds (t distribution); stars: two-sided Welch t-test of each method against LA-Net,
# with the direction ("lower"/"higher"; the paper used a one-sided test, which cannot flag a method that is
# better than LA-Net), "identical repeats" where both groups have zero variance. The same test decides the
# claims in `12_summary`. 3 seeds on 82 images decide little: `11_cross_validation` has the paired tests.

# %% tags=["parameters"]
profile: str = "cpu"  # cpu: the committed results | smoke | paper (configs/profiles/<name>.yaml)
train: bool = False  # True: train the missing runs first (hours on a CPU); False: render the records

# %%
from lanet_core.study.notebook import CLS_METRICS, LOC_METRICS, reference_method, setup, with_paper

study = setup(profile, train)
res = study.experiment("fully_labelled")
runs = res.runs()
reference = reference_method(runs)
runs.groupby("method")[CLS_METRICS + LOC_METRICS].mean().round(3)

# %% [markdown]
# ## Classification (Table 5)

# %%
cls = study.comparison(runs, CLS_METRICS, reference, "table5_busi_classification",
                       caption="BUSI classification, mean ± 95 % CI over seeds; stars vs LA-Net")
cls[["method"] + [c for c in cls.columns if c in CLS_METRICS or c.endswith("_sig")]] if len(cls) else cls

# %% [markdown]
# Beside the authors' numbers (their 256 px runs, ImageNet-pretrained, test-set model selection):

# %%
study.table(with_paper(cls, "T1", CLS_METRICS, size="256"), "table5_busi_classification_vs_paper")

# %% [markdown]
# ## Localisation (Table 6)

# %%
loc = study.comparison(runs, LOC_METRICS, reference, "table6_busi_localisation",
                       caption="BUSI localisation, IoU and Dice per image at threshold 0.5")
study.table(with_paper(loc, "T2", LOC_METRICS, size="256"), "table6_busi_localisation_vs_paper")

# %% [markdown]
# IoU at the paper's threshold 0.5 and at each run's validation-tuned threshold, with the lesion map's size and
# its oracle ceiling (the IoU a perfect predictor of the training target reaches on these images; LA-Net's 4x4
# map at 128 px cannot exceed it). LA-Net-fine = the stride-8 lesion map (16x16 at 128 px).

# %%
ceil = study.localisation(runs, reference, "table6_busi_localisation_ceilings")
ceil[[c for c in ("method", "n", "lesion_map", "iou_ceiling", "iou", "iou_sig", "iou_tuned", "threshold (val)") if c in ceil]] if len(ceil) else ceil

# %% [markdown]
# ## Test-set sampling noise and leakage
# Seeds capture training noise only. The paired bootstrap below resamples the test images (per-image
# correctness and IoU, averaged over seeds) for the difference of each method to LA-Net. The leak-free
# companion re-scores every run on the test images that have no suspected near-duplicate in training
# (list from `01_data_audit`).

# %%
study.bootstrap(res, reference, "table5_busi_paired_bootstrap")

# %%
study.leak_free(res, CLS_METRICS + LOC_METRICS, reference, "table5_busi_leak_free")

# %%
study.bars(runs, ["accuracy", "auc", "iou"], reference, "fig_busi_fully_labelled",
           title="BUSI, fully labelled (mean, 95 % CI, seeds as dots)")
