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
# # Cross-validation over every BUSI image: paired comparisons that can decide
#
# The paper's fixed split tests 82 images; three seeds on it give accuracy CIs of about ±8 points. Here every
# benign and malignant BUSI image is tested once, in one of 5 folds (`data_manifests/busi_cv5_fold*.csv`):
# class-stratified, with every near-duplicate cluster (pHash pairs within the audit's threshold, joined
# transitively) inside one fold, so no test image has a twin in its training folds; validation is carved from
# the training folds by the same rule. The byte-identical opposite-label pair `benign (433)` / `malignant
# (145)` is excluded (`busi_cv5_excluded.csv`).
#
# Where the converted ImageNet MobileNetV2 is available (`lanet convert-weights`), its best fixed-split regime
# (`03_pretraining`: BatchNorm rebuilt, 224 px, lr 1e-3 for the heads and 1e-4 for the feature extractor) runs on
# the same folds: rows "MNV2 (ImageNet)", "MNV2+LA-Net (ImageNet)", "MNV2+LA-Net-fine (ImageNet)". It is not the
# ResNet18 of the other rows (different extractor and input size), so compare it with them as a regime, not a
# method.
#
# Every (method, fold, seed) is one training run: seeds 0-2 on every fold (U-Net at seed 0 only). Each comparison
# A - B gets two two-sided 95 % tests:
#
# * **with retraining** (the verdict): the corrected repeated k-fold t-test (Nadeau & Bengio 2003; Bouckaert & Frank
#   2004) over the per-(fold, seed) differences of the run metrics, paired by fold and seed, with the variance
#   correction 1/J + n_test/n_train (n_train = train + validation images of a fold, 129/516 = 0.25). It asks
#   whether *training* A gives a better classifier than training B, so its interval includes the run-to-run spread
#   (`docs/statistics.md`).
# * **given these trained models** (beside it): per-image paired tests over the 645 out-of-fold images, on the seed
#   ensemble of each fold (malignancy probability and IoU averaged over the seeds, then decided once): exact McNemar
#   (accuracy), DeLong (AUC), paired t (IoU). It asks whether these particular networks differ on these images.
#
# The tables' reading (with retraining) is *a better* when the retraining CI of a - b lies above 0, *b better* when
# below, else *inconclusive*, and then the table states the largest gain the data still allow. A claim (`claims.yaml`)
# turns the same interval into *reproduced* / *contradicted* / *inconclusive* relative to its own direction.

# %% tags=["parameters"]
profile: str = "cpu"  # cpu: the committed results | smoke | paper (configs/profiles/<name>.yaml)
train: bool = False  # True: train the missing runs first (hours on a CPU); False: render the records

# %%
from lanet_core.study import crossval
from lanet_core.study.experiments import FINE, imagenet_cv_method, method_name
from lanet_core.study.notebook import setup

study = setup(profile, train)
res = study.experiment("cross_validation")
bb = study.profile.main_backbone
lanet, vanilla, rmtl = method_name("lanet", bb), method_name("classifier", bb), method_name("rmtl", bb)
fine, agn, unet = lanet + FINE, method_name("agn", bb), method_name("unet", bb)
# the ImageNet MobileNetV2 (BN rebuilt, 224 px, feature extractor at a tenth of the heads' lr), where the profile has it
pt_lanet, pt_vanilla, pt_fine = (imagenet_cv_method(study.profile, k) for k in ("lanet", "classifier", "lanet_fine"))

# %% [markdown]
# ## Per fold and pooled

# %%
cv = crossval.cv_records(res)
summary = crossval.fold_summary(res, cv=cv)
study.table(summary, "cv_summary",
            caption="5-fold cross-validation on BUSI: mean over the (fold, seed) runs ± 95 % CI including training "
                    "variance (corrected repeated k-fold t, n_test/n_train = "
                    f"{cv.ratio:.2f}), and the pooled out-of-fold accuracy and AUC of the seed ensemble over every "
                    "image (IoU, a mean over images, has none: it would repeat its runs' mean to within 0.001); "
                    "lesion_map / iou_ceiling: LA-Net's map size and the IoU of a perfect predictor of its training "
                    "target (the mask) on that map, mean over the runs' test folds")

# %% [markdown]
# ## Paired comparisons: with retraining (the verdict) and given these trained models

# %%
oof = cv.oof
present = set(oof["method"]) if len(oof) else set()
pairs = [(a, b) for a, b in [(lanet, vanilla), (lanet, rmtl), (fine, lanet), (fine, vanilla), (fine, rmtl),
                             (fine, agn), (fine, unet), (lanet, agn), (lanet, unet),
                             (pt_lanet, pt_vanilla), (pt_fine, pt_vanilla), (pt_fine, pt_lanet), (pt_lanet, lanet),
                             (pt_vanilla, vanilla), (pt_fine, rmtl)] if a in present and b in present]
paired = crossval.paired_table(cv, pairs)
study.table(paired, "cv_paired_tests",
            caption="Cross-validated differences A - B (accuracy and AUC in points, IoU as a fraction), 95 % CI, "
                    "two-sided p. With retraining (the verdict): corrected repeated k-fold t over the (fold, seed) "
                    "runs of both methods. Given these trained models: per-image tests over the out-of-fold images on "
                    "each fold's seed ensemble, exact McNemar (accuracy), DeLong (AUC), paired t (IoU)")
paired

# %%
if len(paired):
    from lanet_core.study import figures

    study.figure(figures.cv_forest_figure(paired, conditions=figures.experiment_conditions(res)),
                 "fig_cv_paired_differences")

# %% [markdown]
# ## Model selection across folds: validation accuracy (the paper) vs mean of validation AUC and IoU
# Every joint run records the test metrics of the epoch each criterion selects; here the replicates are the folds
# (the seeds of a fold averaged first), so the 95 % CIs are over five different test sets, not seeds.

# %%
from lanet_core.study import figures  # noqa: E402

runs = res.runs()
if len(runs) and "fold" in runs:  # seeds of a fold averaged first: the replicates are the folds
    by_accuracy = runs[runs["selected_by"] == "accuracy"] if "selected_by" in runs else runs  # the paper's rule
    per_fold = by_accuracy.groupby(["method", "fold"], sort=False).mean(numeric_only=True).reset_index()
    sel = figures.selection_table(per_fold.assign(seed=per_fold["fold"]))
else:
    sel = runs.iloc[0:0]
if len(sel):
    sel = sel.rename(columns={"n_seeds": "n_folds"})
    study.table(sel, "cv_selection_criterion_comparison",
                caption="Cross-validation: test metrics of the epoch selected by validation accuracy vs by mean "
                        "(validation AUC, IoU), mean ± 95 % CI over folds (seeds of a fold averaged first); "
                        "difference = second minus first (points for %, IoU as a fraction)")
sel
