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
# seeds). A method whose maps are poorly calibrated peaks far from 0.5.

# %% tags=["parameters"]
profile: str = "smoke"  # smoke | cpu | paper (configs/profiles/<name>.yaml)
train: bool = True  # False: render from finished run records only

# %%
from lanet_core.study import figures
from lanet_core.study.experiments import method_name
from lanet_core.study.notebook import setup

study = setup(profile, train)
res = study.experiment("fully_labelled")
backbone = study.profile.main_backbone
lanet, unet, rmtl = method_name("lanet", backbone), method_name("unet", backbone), method_name("rmtl", backbone)

# %% [markdown]
# ## Examples (Fig. 5)

# %%
fig, ids = figures.examples_figure(
    res, {lanet: (lanet, "lesion"), unet: (unet, "lesion"), rmtl: (rmtl, "lesion")},
    n=4, contour_columns=[lanet, unet, rmtl],
)
if fig is not None:
    study.figure(fig, "fig5_lesion_masks")
print("examples:", ids or "none (no finished run with lesion maps)")

# %% [markdown]
# ## IoU vs threshold

# %%
sweep = figures.iou_threshold_sweep(res.per_image())
order = [lanet, unet, rmtl] + sorted(set(sweep["method"]) - {lanet, unet, rmtl}) if len(sweep) else []
table = study.table(figures.sweep_table(sweep, order), "iou_threshold_sweep",
                    caption="Mean per-image IoU at each lesion-map threshold, mean ± 95 % CI over seeds")
table[[c for c in table.columns if not c.endswith("_mean")]] if len(table) else table

# %%
if len(sweep):
    study.figure(figures.sweep_figure(sweep, order, threshold=0.5), "fig_iou_threshold_sweep")
