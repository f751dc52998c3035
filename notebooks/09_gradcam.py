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
# # Where do the classifiers look? Grad-CAM of LA-Net vs a vanilla classifier (paper Fig. 12)
#
# The paper shows by eye (Fig. 12) that LA-Net's classification attends to the lesion while a vanilla
# classifier of the same backbone looks elsewhere. Here the same claim is measured on every BUSI test image
# with a lesion mask, for the LA-Net and vanilla runs of the main backbone in the fully-labelled experiment
# (`02_fully_labelled`). Grad-CAM (`grad-cam` package) of the predicted class on the last feature stage,
# computed once per run from its checkpoint and stored beside the run records:
#
# * **CAM energy in the lesion**: the share of the (non-negative) CAM's total mass inside the true lesion;
#   a CAM that is zero everywhere has no energy (NaN, left out of the mean and counted in the table);
# * **pointing game**: 1 if the CAM's maximum falls inside the lesion (a zero CAM counts as a miss).
#
# Both are averaged over the test images per run; mean ± 95 % CI over seeds (t distribution), two-sided
# Welch t-test of the vanilla classifier against LA-Net (direction shown). The paired bootstrap resamples the test images (per-image
# scores averaged over seeds first) for the LA-Net minus vanilla difference, so test-set sampling noise is
# shown too. For reference: the lesion covers only part of each image, so a CAM spread uniformly would score
# the lesion's area share in energy.

# %% tags=["parameters"]
profile: str = "cpu"  # cpu: the committed results | smoke | paper (configs/profiles/<name>.yaml)
train: bool = False  # True: train the missing runs first (hours on a CPU); False: render the records

# %%
from lanet_core.study import figures
from lanet_core.study.experiments import method_name
from lanet_core.study.notebook import setup

study = setup(profile, train)
res = study.experiment("fully_labelled")
backbone = study.profile.main_backbone
lanet, vanilla = method_name("lanet", backbone), method_name("classifier", backbone)
order = [lanet, vanilla]
records = res.gradcam()
scores = figures.gradcam_per_image(records, order) if len(records) else records
have_both = len(scores) > 0 and set(order) <= set(scores["method"])
print(f"{lanet} vs {vanilla}: {scores['image_id'].nunique() if len(scores) else 0} test images with masks "
      f"scored by both" if have_both else "Grad-CAM records of LA-Net and the vanilla classifier are missing")

# %% [markdown]
# ## Localisation of the classification evidence

# %%
if have_both:
    loc = study.table(figures.gradcam_localisation_table(scores, lanet, order), "gradcam_localisation",
                      caption="Grad-CAM of the predicted class: share of CAM energy inside the true lesion and "
                              "pointing-game hit rate, mean ± 95 % CI over seeds; stars: two-sided Welch t-test vs LA-Net; "
                              "zero_energy_cams: CAMs with no energy (left out of the energy mean)")
    zero = ", ".join(f"{m}: {n}" for m, n in zip(loc["method"], loc["zero_energy_cams"]))
    print(f"zero-energy CAMs (NaN energy, over all seeds): {zero}")
    display_cols = ["method", "n", "images_per_run", "zero_energy_cams", *figures.GRADCAM_SCORES,
                    *[f"{m}_sig" for m in figures.GRADCAM_SCORES]]
    display(loc[display_cols])

# %%
if have_both:
    paired = study.table(figures.gradcam_paired_table(scores, lanet, vanilla), "gradcam_paired_bootstrap",
                         caption=f"Paired bootstrap over test images (per-image scores averaged over seeds): "
                                 f"{lanet} minus {vanilla}, 95 % BCa interval (percentile where the note says so)")
    display(paired[["comparison", "metric", "n_images", "n_dropped", "mean", "mean_reference", "diff_ci", "note"]])

# %%
if have_both:
    study.figure(figures.gradcam_score_figure(scores, order, reference=lanet,
                                              conditions=figures.experiment_conditions(res, order)),
                 "fig12_gradcam_scores")

# %% [markdown]
# ## Examples (Fig. 12)
# A few test images with masks (first seed; both classes where the stored examples allow): the image with the
# true lesion contour (green), LA-Net's lesion map (its 0.5 contour in magenta), and the Grad-CAM of
# LA-Net and of the vanilla classifier (true contour dashed white on the overlays). Maps are upsampled
# bilinearly to the size the runs saw.

# %%
fig, ids = figures.examples_figure(
    res,
    {f"{lanet} lesion map": (lanet, "lesion"), f"{lanet} Grad-CAM": (lanet, "gradcam"),
     f"{vanilla} Grad-CAM": (vanilla, "gradcam")},
    n=min(4, int(study.profile.gradcam.get("examples", 4))), contour_columns=[f"{lanet} lesion map"],
)
if fig is not None:
    study.figure(fig, "fig12_gradcam")
print("examples:", ids or "none (no stored Grad-CAM examples)")
