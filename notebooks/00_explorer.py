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
# # Explorer: one test image, one or two methods, from the committed records
#
# Not part of the study's rendering (`lanet study` does not execute it): open it in JupyterLab (`make lab`) and run
# all cells. Everything comes from the run records committed under `results/runs/` (`per_image.csv`,
# `lesion_maps.npz`, `metrics.json`, Grad-CAM records where a run has them) and the study's tables (the data
# audit's near-duplicate list, the claims table); no checkpoint is needed and nothing is trained or written.
#
# - **experiment, method, beside, seed, split**: the run to look at, and a second method shown beside it on the
#   same image (cross-validation: the fold that tested the image is found by itself);
# - **show / order**: errors, correct, one class, the test images with a suspected near-duplicate twin in training
#   (`01_data_audit`), ordered by image id, most confident mistakes, lowest or highest IoU, p(malignant);
# - **claim**: a row of the claims table (`12_summary`); the image list becomes the images behind it, ordered by
#   how much the claim's two arms differ there (mean over their seeds), with the two arms shown side by side;
# - per image: the image with its true outline (green) and the predicted outlines at 0.5 (orange) and at the run's
#   validation-tuned threshold (magenta, where the run recorded one), the stored lesion map with its colour bar,
#   the Grad-CAM where it was recorded, p(malignant), the decision and the true label.
#
# Without the data (`../shared/data` or `$LANET_DATA_ROOT`) the image and its outline are left out and the lesion
# map is shown alone. The notes under the numbers say where a view would need a checkpoint (Grad-CAM of an image
# outside a run's recorded examples, maps on another split, a lesion map a run did not store).

# %% tags=["parameters"]
profile: str = "cpu"  # whose records: cpu (the committed results) | smoke | paper
train: bool = False  # unused here (the explorer trains nothing); kept so every notebook takes the same parameters

# %%
from lanet_core.explorer import explorer

explorer(profile)

# %% [markdown]
# The same records without widgets, e.g. the five most confident mistakes of LA-Net (seed 0) on the BUSI test split:

# %%
from lanet_core.explorer import Records, select_images

records = Records(profile)
run = records.record("fully_labelled", records.choices("fully_labelled")[0], 0)
worst = select_images(run.images(), "errors", "most confident mistakes").head(5)
worst[["image_id", "label", "p_malignant", "confidence", "iou", "twin"]]
