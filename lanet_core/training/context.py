"""What every use of one config's model shares: its manifest rows, the decoded-image cache, datasets and
loaders, the device and precision, and model construction.

Training (:mod:`.trainer`), evaluation (:mod:`.evaluator`), ``lanet bench``, ``lanet evaluate`` and the post-hoc
analyses (Grad-CAM, external validation) each build one :class:`RunContext`; none of them needs a trainer.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from lanet_core.data.dataset import ImageCache, LesionDataset
from lanet_core.data.sources import load_manifest
from lanet_core.errors import ConfigError
from lanet_core.models.factory import build_model
from lanet_core.precision import resolve_amp, resolve_channels_last


def resolve_device(name: str) -> torch.device:
    """``train.device``: ``auto`` (CUDA when present), ``cpu`` or ``cuda`` (an error without a GPU)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is available")
    return torch.device(name)


def checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    """The model weights saved in checkpoint ``path`` (``<run>/checkpoints/best.pt``), on CPU; a clear error when
    it is absent (checkpoints are not committed: a run is retrained to get it) or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path.parent.parent}: no checkpoint {path} (checkpoints are not kept in git; reproduce "
                          f"it with `lanet train {path.parent.parent / 'config.yaml'} --force`, deterministic on CPU)")
    try:
        # weights_only: a checkpoint from elsewhere is untrusted; it may hold tensors and plain containers only,
        # never pickled objects (which could run code while loading)
        return torch.load(path, map_location="cpu", weights_only=True)["model"]
    except Exception as exc:
        raise ConfigError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc}); retrain the run "
                          "(lanet train <run>/config.yaml --force)") from None


class RunContext:
    """Data, device and model construction of one resolved config.

    Args:
        cfg: resolved config (:func:`lanet_core.config.resolve_config`).
        rows: the manifest rows (all splits).
        data_root: folder the manifest's paths are relative to.

    Building a context applies ``train.deterministic`` (``torch.use_deterministic_algorithms``, warn-only; on
    CUDA also cuDNN's deterministic mode and a fixed cuBLAS workspace), so every pass it drives is reproducible.
    """

    def __init__(self, cfg: Mapping[str, Any], rows: pd.DataFrame, data_root: Path | str):
        self.cfg = copy.deepcopy(dict(cfg))
        self.rows = rows.reset_index(drop=True)
        self.data_root = Path(data_root)
        t, d = self.cfg["train"], self.cfg["data"]
        self.device = resolve_device(t["device"])
        self.amp = resolve_amp(t["amp"], self.device)
        self.channels_last = resolve_channels_last(t["channels_last"], self.device, self.amp)
        self.deterministic = bool(t.get("deterministic", True))
        if self.device.type == "cuda" and self.deterministic:
            # cuBLAS needs a fixed workspace for reproducible GEMMs (read when its handle is created)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        # warn_only: an op without a deterministic kernel warns (the training loop records it by name)
        torch.use_deterministic_algorithms(self.deterministic, warn_only=True)
        self.cache = ImageCache(self.data_root, d["image_size"], d["resize"])

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], manifest: str | None = None) -> "RunContext":
        """The context of ``cfg`` with its own manifest, or with ``manifest`` (another dataset, root ``auto``)."""
        cfg = dict(cfg)
        d = dict(cfg["data"])
        if manifest is not None:
            d["manifest"], d["root"] = manifest, "auto"
        cfg["data"] = d
        rows, _, data_root = load_manifest(d["manifest"], d["root"])
        return cls(cfg, rows, data_root)

    @property
    def select_split(self) -> str:
        """The split model selection reads: ``val`` (the paper), or ``test`` (``train.select_on=test``, as-run)."""
        return "test" if self.cfg["train"]["select_on"] == "test" else "val"

    # ----------------------------------------------------------------- data
    def rows_for(self, split: str, images: str = "all") -> pd.DataFrame:
        """The manifest rows of ``split``; ``images="labelled"``: only those with a location label."""
        sel = self.rows[self.rows["split"] == split]
        if images == "labelled":
            sel = sel[sel["location_label"] != "none"]
        return sel

    def dataset(self, rows: pd.DataFrame, train: bool) -> LesionDataset:
        """The cached dataset of ``rows`` (``train``: with the configured augmentation)."""
        d = self.cfg["data"]
        return LesionDataset(
            rows, self.data_root, d["image_size"], train=train, resize=d["resize"], augment=d["augment"],
            rotation=d["rotation"], normalize=d["normalize"], seed=self.cfg["train"]["seed"], cache=self.cache,
        )

    def loader(self, ds: LesionDataset, train: bool, seed: int = 0) -> DataLoader:
        """Batches of ``train.batch_size``; shuffled by a generator seeded with ``seed`` when ``train``."""
        bs = self.cfg["train"]["batch_size"]
        gen = torch.Generator().manual_seed(seed)
        return DataLoader(
            ds, batch_size=bs, shuffle=train, generator=gen if train else None, drop_last=train and len(ds) > bs,
            num_workers=self.cfg["data"]["num_workers"], pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def split_loader(self, split: str, images: str = "all") -> tuple[LesionDataset, DataLoader]:
        """(un-augmented dataset, loader) of a split, for evaluation passes."""
        ds = self.dataset(self.rows_for(split, images), train=False)
        return ds, self.loader(ds, False)

    def model_input(self, image: torch.Tensor) -> torch.Tensor:
        """A batch of images ``(B, 3, S, S)`` in the memory format the model runs in."""
        return image.contiguous(memory_format=torch.channels_last) if self.channels_last else image

    # ----------------------------------------------------------------- model
    def build_model(self) -> nn.Module:
        """A freshly initialised model (seeded by ``train.seed``) on the device, in the run's memory format."""
        model = build_model(self.cfg).to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def load_model(self, path: Path) -> nn.Module:
        """The model with the weights of checkpoint ``path`` (a clear error if it is absent or unreadable)."""
        state = checkpoint_state(path)
        model = self.build_model()
        model.load_state_dict(state)
        return model
