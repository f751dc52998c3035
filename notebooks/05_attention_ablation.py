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
# # Attention-module ablation (Tables 7-8)
#
# LA-Net with each attention module removed: without channel attention (CAM), without spatial attention
# (SAM) in every CBAM, and without the mask-attention module (MAM: the classifier then sees f_n alone while
# LA-Net is still trained by the localisation loss). The modules are really removed (the authors' release
# ignored the CAM/SAM flags). Paper: removing MAM hurt classification most; removing CAM or SAM hurt
# localisation.

# %% tags=["parameters"]
profile: str = "cpu"  # cpu: the committed results | smoke | paper (configs/profiles/<name>.yaml)
train: bool = False  # True: train the missing runs first (hours on a CPU); False: render the records

# %%
from lanet_core.study.notebook import CLS_METRICS, LOC_METRICS, reference_method, setup, with_paper

study = setup(profile, train)
res = study.experiment("attention_ablation")
runs = res.runs()
reference = reference_method(runs)

# %%
cls = study.comparison(runs, CLS_METRICS, reference, "table7_busi_attention_classification",
                       caption="BUSI, attention ablation; stars vs the full model")
R18_CSV = "authors' R18 CSV"  # the published Tables 7/8 are ResNet50 (full model IoU 0.438); this is their R18 ablation
study.table(with_paper(cls, "T7", CLS_METRICS, size="256", source=R18_CSV), "table7_busi_attention_classification_vs_paper",
            caption="Ours beside the authors' ResNet18 attention-ablation CSV (ablation_busi_att.csv, 256 px); the "
                    "paper's published Table 7 reports ResNet50")

# %%
loc = study.comparison(runs, LOC_METRICS, reference, "table8_busi_attention_localisation")
study.table(with_paper(loc, "T8", LOC_METRICS, size="256", source=R18_CSV), "table8_busi_attention_localisation_vs_paper",
            caption="Ours beside the authors' ResNet18 attention-ablation CSV (256 px); the paper's published Table 8 "
                    "reports ResNet50 (full model IoU 0.438)")

# %%
study.bootstrap(res, reference, "table7_8_attention_paired_bootstrap")

# %%
study.leak_free(res, CLS_METRICS + LOC_METRICS, reference, "table7_8_attention_leak_free")

# %%
study.bars(runs, ["accuracy", "auc", "iou", "dice"], reference, "fig_attention_ablation",
           title="Attention ablation on BUSI")

# %% [markdown]
# ## The same ablation for LA-Net-fine (lesion map at stride 8; beyond the paper)
# Each module removed from LA-Net-fine, stars against the full LA-Net-fine (the tables above test every row against
# the paper's stride-32 LA-Net). Whether a module matters may depend on the lesion map it attends with: at stride 32
# the MAM sees a 4x4 map.

# %%
fine_runs = runs[runs["fusion_stride"] < 32] if len(runs) and "fusion_stride" in runs else runs.iloc[0:0]
fine_ref = reference_method(fine_runs, suffix="-fine")
if fine_ref is not None and fine_runs["method"].nunique() > 1:
    study.comparison(fine_runs, CLS_METRICS + LOC_METRICS, fine_ref, "attention_ablation_fine",
                     caption=f"BUSI, attention ablation of {fine_ref}; stars vs the full {fine_ref}")
    study.bootstrap(res, fine_ref, "attention_ablation_fine_paired_bootstrap", methods=list(fine_runs["method"]))
else:
    print("LA-Net-fine ablation runs are missing")
