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
# # Partly-labelled training: the MBUD experiment on the BUS-BRA stand-in (Tables 3-4, 9-10)
#
# The paper's central semi-supervised experiment uses MBUD (private): class labels on every frame, boxes on
# only 384. Here BUS-BRA plays that role: boxes (from its box column) are kept on a seeded, class-stratified
# 20 % of the training images, class labels on all (`data_manifests/busbra_box20_seed<k>.csv`, one subset
# per seed). Compared, as in the paper:
#
# * **s-SSL**: LA-Net / RMTL trained on all training images (stage 2 mixes boxed and unboxed images; the
#   pseudo-label branch with tau = 0.8, alpha = 0.1 for the unboxed ones);
# * **F**: the same models on the boxed subset only (the paper's F-MBUD), and U-Net, DeepLabV3, AGN on it;
# * a vanilla classifier on all class labels.
#
# Localisation is scored as the paper says it did: the predicted mask converted to the bounding box of its
# largest connected component against the true box (`iou_box`), and beyond the paper against the true masks
# (`iou`). The paper's MBUD direction: s-SSL **raised** classification and **lowered** localisation.

# %% tags=["parameters"]
profile: str = "cpu"  # cpu: the committed results | smoke | paper (configs/profiles/<name>.yaml)
train: bool = False  # True: train the missing runs first (hours on a CPU); False: render the records

# %%
from lanet_core.study.notebook import BOX_METRICS, CLS_METRICS, LOC_METRICS, reference_method, setup

study = setup(profile, train)
res = study.experiment("partial_labels")
runs = res.runs()
reference = reference_method(runs, "LA-Net-s-SSL")
# the runs behind the tables below: one row per method, its regime and how many seeds finished
runs.groupby(["method", "regime"], dropna=False)["seed"].nunique().rename("seeds").reset_index() if len(runs) else runs

# %% [markdown]
# ## Classification (Tables 3 and 9)

# %%
study.comparison(runs, CLS_METRICS, reference, "table3_busbra_partial_classification",
                 caption="BUS-BRA test, partly-labelled training; stars vs LA-Net with s-SSL")

# %% [markdown]
# ## Localisation (Tables 4 and 10): boxes (paper protocol) and masks (beyond the paper)

# %%
study.comparison(runs, BOX_METRICS + LOC_METRICS, reference, "table4_busbra_partial_localisation",
                 caption="IoU (box): predicted mask -> box of its largest component vs the true box; IoU: vs the true mask")

# %% [markdown]
# ## s-SSL minus F (the paper's Tables 9-10 direction), per model family

# %%
sf = runs[runs["regime"].isin(["s-SSL", "F"])] if len(runs) else runs
study.difference(sf, by="regime", a="s-SSL", b="F", metrics=["accuracy", "auc", "f1_macro", "iou_box", "iou"],
                 name="table9_10_ssl_minus_f", group_cols=("family",))

# %% [markdown]
# ## The same question over BUS-BRA's official 5 folds (beyond the paper's single split)
# Every BUS-BRA image is tested once (the dataset's patient-level `5-fold-cv.csv`), in the pretrained regime the BUSI
# cross-validation found strongest (ImageNet MobileNetV2, BN rebuilt, 224 px, feature extractor at a tenth of the
# heads' lr), with boxes on 20 % and on 5 % of each fold's training images. Differences are paired by fold (and seed):
# *with retraining* is the corrected repeated k-fold t-test over the runs (the verdict), *given these trained models*
# the per-image test over the out-of-fold images (exact McNemar, DeLong, paired t), as in notebook 11. A third table
# per fraction projects the with-retraining half-width for more seeds per fold: the corrected test's variance is
# `(1/J + n_test/n_train) * s**2`, so more seeds shrink only the `1/J` term, and the floor `1.96 * sqrt(n_test/n_train)
# * s` tells whether a target precision can be bought with compute at all.
# An F run trains, selects its stage-1 epoch and rebuilds its BatchNorm statistics on the boxed training images only;
# both arms select epochs on the same fully boxed validation patients (~225 images, more than the 64 boxed training
# images of a 5 % fold). The U-Net reference is the profile's scratch network at its own size, not the ImageNet one.
# LA-Net's lesion map at 224 px is 7x7 (the paper's stride 32), LA-Net-fine's 28x28. The summary gives each map's
# oracle IoU (`iou_ceiling`): a perfect predictor of the training target (here the filled box) on a map of that size,
# scored against the true masks as a model's map is. Read each IoU against its own ceiling, not against 1.

# %%
from lanet_core.study import crossval, figures
from lanet_core.study.experiments import fine_tuning_method, method_name

pcv = study.experiment("partial_labels_cv")
pcv_lanet, pcv_rmtl = fine_tuning_method(study.profile, "lanet"), fine_tuning_method(study.profile, "rmtl")
pcv_vanilla = fine_tuning_method(study.profile, "classifier") if study.profile.pretrained else ""
pcv_unet = f"{method_name('unet', study.profile.main_backbone)}-F"  # localisation reference: scratch, boxed images only
for boxed in sorted({s.group["boxed"] for s in pcv.specs}, reverse=True):
    part = pcv.subset(boxed=boxed)
    if part.runs().empty:
        print(f"boxes on {boxed} % of the training images: no finished run yet ({len(part.missing)} planned; "
              "`lanet study --profile cpu --plan` prices them)")
        continue
    cv_part = crossval.cv_records(part)
    regimes = {}  # family -> its regimes: a family with both s-SSL and F gets an s-SSL - F row (not the U-Net)
    for s in part.specs:
        regimes.setdefault(s.group["family"], set()).add(s.group.get("regime"))
    families = sorted(f for f, r in regimes.items() if {"s-SSL", "F"} <= r)
    pairs = ([(f"{f}-s-SSL", f"{f}-F") for f in families]
             + [(f"{pcv_lanet}-s-SSL", f"{pcv_rmtl}-F"), (f"{pcv_lanet}-s-SSL", pcv_vanilla),  # Table 3
                (f"{pcv_lanet}-s-SSL", f"{pcv_rmtl}-s-SSL"), (f"{pcv_lanet}-s-SSL", pcv_unet)])  # Table 4
    display(study.table(crossval.fold_summary(part, metrics=("accuracy", "auc", "iou_box", "iou"), cv=cv_part),
                        f"busbra_cv_box{boxed}_summary",
                        caption=f"BUS-BRA 5-fold CV, boxes on {boxed} % of each fold's training images: mean over the "
                                "(fold, seed) runs ± the corrected repeated k-fold CI, and the pooled out-of-fold "
                                "accuracy and AUC; lesion_map / iou_ceiling: LA-Net's map size and the IoU against the true masks "
                                "of a perfect predictor of its training target (the box) on that map, mean over the "
                                "runs' test folds"))
    paired = crossval.paired_table(cv_part, pairs, metrics=("accuracy", "auc", "iou_box"))
    display(study.table(paired,
                        f"busbra_cv_box{boxed}_ssl_minus_f",
                        caption=f"s-SSL minus F per family (Tables 9, 10); LA-Net s-SSL against RMTL-F and vanilla "
                                f"(Table 3) and against RMTL s-SSL and the scratch U-Net on the boxed images (Table 4); "
                                f"BUS-BRA 5-fold CV, boxes on {boxed} %: with retraining and given these trained models "
                                "(per image: exact McNemar for accuracy, DeLong for AUC, paired t for IoU (box))"))
    if len(paired):  # the same differences as a forest plot (as notebook 11's fig_cv_paired_differences)
        study.figure(figures.cv_forest_figure(paired, conditions=figures.experiment_conditions(part)),
                     f"fig_busbra_cv_box{boxed}_paired_differences")
    # the precision target (half-width <= 3 points for s-SSL - F): what more seeds per fold would buy
    precision = crossval.precision_table(cv_part, [(f"{f}-s-SSL", f"{f}-F") for f in families])
    if len(precision):
        display(study.table(precision, f"busbra_cv_box{boxed}_precision",
                            caption=f"s-SSL minus F, BUS-BRA 5-fold CV, boxes on {boxed} % (families run on every "
                                    "fold): half-width of the corrected test's with-retraining 95 % CI (points) now "
                                    "and projected for more seeds per fold, taking today's SD of the per-fold "
                                    "differences as true (from five differences it is itself uncertain, 0.6x-2.9x); "
                                    "the floor is what no number of seeds goes below (runs that share training images "
                                    "stay correlated)"))

# %%
study.bars(runs, ["accuracy", "auc", "iou_box"], reference, "fig_busbra_partial_labels",
           title="BUS-BRA, boxes on 20 % of training images")

# %% [markdown]
# ## Sensitivity of s-SSL to the pseudo-label gate tau and weight alpha (beyond the paper)

# %%
sens = study.experiment("sensitivity").runs()
if len(sens):
    grid = sens.groupby(["tau", "alpha"]).agg(
        seeds=("seed", "nunique"), **{f"{m} (%)": (m, lambda v: round(100 * v.mean(), 1)) for m in ("accuracy", "auc", "f1_macro")},
        **{m: (m, lambda v: round(v.mean(), 3)) for m in ("iou_box", "iou")}).reset_index()
    study.table(grid, "sensitivity_tau_alpha",
                f"LA-Net s-SSL on BUS-BRA partial labels (boxes on 20 %): tau / alpha grid; each cell is the mean over "
                f"the seeds in `seeds` (here {', '.join(map(str, sorted(sens['seed'].unique())))}), not a CI")
    # the s-SSL LA-Net keeps its method name (and colour); the figure title says which parameter is fixed
    study.lines(sens[sens["alpha"] == 0.1], "tau", ["accuracy", "iou_box"], "fig_sensitivity_tau",
                title="s-SSL on BUS-BRA (boxes on 20 %), alpha = 0.1")
    study.lines(sens[sens["tau"] == 0.8], "alpha", ["accuracy", "iou_box"], "fig_sensitivity_alpha",
                title="s-SSL on BUS-BRA (boxes on 20 %), tau = 0.8")
sens

# %% [markdown]
# ## External validity (beyond the paper)
# Models trained on BUSI evaluated on the BUS-BRA test split, and models trained on BUS-BRA (s-SSL LA-Net,
# vanilla classifier) evaluated on the BUSI test split, beside their in-domain numbers.

# %%
busi = study.experiment("fully_labelled")
study.external(busi.runs(), busi.external("busbra"), ["accuracy", "auc", "iou"], "external_busi_to_busbra",
               trained_on="BUSI", tested_on="BUS-BRA")

# %%
study.external(runs, res.external("busi"), ["accuracy", "auc", "iou"], "external_busbra_to_busi",
               trained_on="BUS-BRA (partial labels)", tested_on="BUSI")
