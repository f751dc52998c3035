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
# # Summary: headline table, the paper's claims checked, and the results README
#
# Collects the headline numbers (BUSI, fully labelled) beside the authors', checks each of the paper's claims
# against our runs (reproduced / contradicted / inconclusive, from the 95 % CI of the difference: two-sided
# Welch over seeds on the fixed split, paired tests over images on the cross-validated runs; an inconclusive
# verdict states the largest effect the data still allow) and writes `<output>/README.md` with every table of
# the study next to the paper's numbers.

# %% tags=["parameters"]
profile: str = "cpu"  # cpu: the committed results | smoke | paper (configs/profiles/<name>.yaml)
train: bool = False  # True: train the missing runs first (hours on a CPU); False: render the records

# %%
from lanet_core.study.notebook import setup
from lanet_core.study.summary import (claims_tally, compute_hours, evaluate_claims, hardware_check,
                                     hardware_check_summary, headline_table, runs_by_device, write_readme)

study = setup(profile, train)
headline = study.table(headline_table(study), "headline_busi", "BUSI, fully labelled: ours vs the paper")
headline

# %%
claims = evaluate_claims(study)
study.table(claims, "claims", f"The paper's claims checked against our runs. Tally: {claims_tally(claims)}")
print("Tally:", claims_tally(claims))
claims[["where", "paper", "verdict"]]

# %% [markdown]
# Where the runs were trained (a run is identified by its config, so CPU and GPU runs can meet in one table),
# and the hardware check: study runs trained again on another device, or twice on the same one.

# %%
by_device = study.table(runs_by_device(study), "runs_by_device", "Finished runs and hours per experiment and device")
check_runs = hardware_check(study)
if len(check_runs):
    study.table(check_runs, "hardware_check", "The same config and seed trained again: study run vs retrained")
check = hardware_check_summary(check_runs, study)
by_device, check

# %%
hours, n_runs = compute_hours(study)
print(f"{n_runs} finished runs, {hours:.1f} hours of training and evaluation")
conditions = f"""
Profile `{study.profile.name}` (`configs/profiles/{study.profile.name}.yaml`): {study.profile.description.strip()}

Differences from the paper's conditions that matter when reading the numbers: no ImageNet-pretrained ResNet
weights are reachable here, so every ResNet feature extractor starts from scratch (the paper's and the
authors' start from ImageNet, and the authors' stage 2 from a classifier trained on BUSI+MBUD); model
selection uses the validation split (as the paper's section 4.3 states: the highest validation accuracy; the
authors' released `train.py` selects on the test set instead, see `../shared/reference/authors-code.md`); inputs
are {study.profile.main_size} px (paper: 256 px); schedules are short. Further deviations from the paper's text,
taken from the authors' code, in every committed run: inputs normalised to [-1, 1] (`data.normalize: half`;
paper: [0, 1]); the `paper` augmentation includes a RandomResizedCrop (scale 0.75-1) beside rotations, flips and
colour jitter; LA-Net initialised with Kaiming (`model.init: kaiming`; paper: Xavier); ResNet18 where the paper
used ResNet50 for the attention ablation, the label-ratio sweep and the partly-labelled experiment (Tables 7-10:
its Tables 7/8 report ResNet50, full model IoU 0.438). The paper's numbers are quoted from the authors' result
CSVs (mean ± 95 % CI over their 3 unseeded repeats).
"""
readme = write_readme(study, headline, claims, conditions, by_device, check)
print("wrote", readme.relative_to(study.profile.output.parent) if readme.is_relative_to(study.profile.output.parent) else readme.name)
