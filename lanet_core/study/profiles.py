"""Study profiles: one reviewed YAML file each under ``configs/profiles/`` (smoke, cpu, paper).

A profile says which data each experiment uses, the seeds, the sizes and backbones of the ablations,
the base config applied to every run (schedules), and where its outputs go.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lanet_core.config import deep_merge, resolve_config
from lanet_core.errors import ConfigError
from lanet_core.paths import project_root

# The study's notebooks, in order, and which experiments each renders (the runner trains them in this order): the
# one declaration of the notebook list; a profile renders all of them unless its `notebooks:` names a subset.
NOTEBOOK_EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "01_data_audit": (),
    "02_fully_labelled": ("fully_labelled",),
    "03_pretraining": ("pretraining", "fully_labelled"),  # the pretraining table reads the R18 scratch runs too
    "04_partial_labels": ("partial_labels", "sensitivity", "partial_labels_cv"),
    "05_attention_ablation": ("attention_ablation",),
    "06_label_ratio": ("label_ratio",),
    "07_input_size": ("input_size",),
    "08_depth": ("depth",),
    "09_gradcam": ("fully_labelled",),
    "10_lesion_masks": ("fully_labelled", "lesion_target"),
    "11_cross_validation": ("cross_validation",),
    "12_summary": (),
}


PROFILE_KEYS = {
    "name", "description", "output", "seeds", "datasets", "base", "sizes", "backbones", "label_ratios",
    "baselines", "vit_backbone", "pretrained", "sensitivity", "gradcam", "notebooks", "overrides", "lanet_fine",
    "cross_validation", "experiment_backbones", "baseline_backbones", "partial_labels_cv",
}


@dataclass
class Profile:
    """A parsed profile (see ``configs/profiles/*.yaml`` for the meaning of each field)."""

    name: str
    description: str
    output: Path
    seeds: list[int]
    datasets: dict[str, str]
    base: dict[str, Any]
    sizes: list[int]
    backbones: list[str]
    label_ratios: list[float]
    baselines: list[str]
    vit_backbone: str
    pretrained: dict[str, Any]
    sensitivity: dict[str, Any]
    gradcam: dict[str, Any]
    notebooks: list[str]
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    lanet_fine: dict[str, Any] = field(default_factory=dict)  # LA-Net-fine: finer lesion map (empty: not run)
    cross_validation: dict[str, Any] = field(default_factory=dict)  # folds, seeds, methods (empty: not run)
    partial_labels_cv: dict[str, Any] = field(default_factory=dict)  # BUS-BRA official folds (empty: not run)
    experiment_backbones: dict[str, str] = field(default_factory=dict)  # experiment -> feature extractor (default: main)
    baseline_backbones: dict[str, str] = field(default_factory=dict)  # baseline key -> its encoder (e.g. deeplabv3: resnet50)
    path: Path | None = None

    @property
    def main_size(self) -> int:
        return self.sizes[0]

    @property
    def main_backbone(self) -> str:
        return self.backbones[0]

    def backbone_for(self, experiment: str) -> str:
        """The feature extractor of ``experiment`` (the paper ran its ablations with R50): the profile's
        ``experiment_backbones`` entry, else the main backbone."""
        return self.experiment_backbones.get(experiment, self.main_backbone)

    def dataset(self, key: str, **fmt: Any) -> str:
        if key not in self.datasets:
            raise ConfigError(f"profile {self.name!r} names no dataset {key!r} (has {sorted(self.datasets)})")
        return self.datasets[key].format(**fmt)

    def config(self, *updates: dict[str, Any], experiment: str | None = None) -> dict[str, Any]:
        """Resolved run config: defaults < profile base < per-experiment overrides < ``updates``."""
        user = copy.deepcopy(self.base)
        if experiment and experiment in self.overrides:
            user = deep_merge(user, self.overrides[experiment], strict=False)
        for u in updates:
            user = deep_merge(user, u, strict=False)
        return resolve_config(user)

    @property
    def tables_dir(self) -> Path:
        return self.output / "tables"

    @property
    def figures_dir(self) -> Path:
        return self.output / "figures"

    @property
    def notebooks_dir(self) -> Path:
        return self.output / "notebooks"


def profile_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    folder = project_root() / "configs" / "profiles"
    if not folder.is_dir():
        raise ConfigError(
            f"profile {name!r}: no configs/profiles/ here ({project_root()}). The study (profiles, notebooks, "
            "committed manifests and results) lives in a checkout of the lanet repository, not in the installed "
            "package: clone it, `pip install -e .` from it and run `lanet study` inside it (or pass a profile "
            "YAML path).")
    cand = folder / f"{name}.yaml"
    if not cand.is_file():
        known = sorted(p.stem for p in (project_root() / "configs" / "profiles").glob("*.yaml"))
        raise ConfigError(f"unknown profile {name!r}; known profiles: {known}")
    return cand


def _notebooks(listed: list[str] | None, path: Path) -> list[str]:
    """A profile's notebooks: :data:`NOTEBOOK_EXPERIMENTS` (the study's, in order) unless the profile lists its own
    (a subset, or notebooks of a user's own study under ``notebooks/``)."""
    return list(listed) if listed else list(NOTEBOOK_EXPERIMENTS)


def load_profile(name: str) -> Profile:
    """Read and check ``configs/profiles/<name>.yaml`` (or a YAML path)."""
    path = profile_path(name)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:  # e.g. a !!python tag: safe_load refuses to build objects
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"{path}: not a valid profile YAML ({first}); profiles hold plain values only") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a profile must be a mapping of keys")
    unknown = set(raw) - PROFILE_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown profile key(s) {sorted(unknown)}; valid: {sorted(PROFILE_KEYS)}")
    try:
        out = Path(raw.get("output", f"results/{raw['name']}"))
        prof = Profile(
            name=raw["name"],
            description=raw.get("description", ""),
            output=out if out.is_absolute() else _results_root(out),
            seeds=[int(s) for s in raw["seeds"]],
            datasets=dict(raw["datasets"]),
            base=dict(raw.get("base", {})),
            sizes=[int(s) for s in raw["sizes"]],
            backbones=list(raw["backbones"]),
            label_ratios=[float(r) for r in raw.get("label_ratios", [0.25, 0.5, 0.75, 1.0])],
            baselines=list(raw.get("baselines", [])),
            vit_backbone=raw.get("vit_backbone", "vit_small_patch16_224"),
            pretrained=dict(raw.get("pretrained", {})),
            sensitivity=dict(raw.get("sensitivity", {})),
            gradcam=dict(raw.get("gradcam", {})),
            notebooks=_notebooks(raw.get("notebooks"), path),
            overrides=dict(raw.get("overrides", {})),
            lanet_fine=dict(raw.get("lanet_fine", {}) or {}),
            cross_validation=dict(raw.get("cross_validation", {}) or {}),
            partial_labels_cv=dict(raw.get("partial_labels_cv", {}) or {}),
            experiment_backbones=dict(raw.get("experiment_backbones", {}) or {}),
            baseline_backbones=dict(raw.get("baseline_backbones", {}) or {}),
            path=path,
        )
    except KeyError as exc:
        raise ConfigError(f"{path}: missing profile key {exc.args[0]!r}") from None
    prof.config()  # the base must resolve
    return prof


def _results_root(rel: Path) -> Path:
    """Profile outputs are relative to the project root, except that ``$LANET_RESULTS_DIR`` (tests) wins."""
    import os

    env = os.environ.get("LANET_RESULTS_DIR")
    if env:
        parts = rel.parts[1:] if rel.parts and rel.parts[0] == "results" else rel.parts
        return Path(env).joinpath(*parts)
    return project_root() / rel
