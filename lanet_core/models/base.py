"""The one small protocol every model of the library implements (LA-Net and every baseline).

* ``forward(x (B, 3, S, S)) -> ModelOutput`` (raw logits; no activation, loss or metric inside);
* ``component_modules() -> dict[str, nn.Module]``: disjoint named parts that sum to the model's parameters
  (``"feature extractor"`` is the pretrained part where there is one);
* ``gradcam_layer``: the module Grad-CAM hooks (``None`` for segmenters), ``gradcam_reshape_transform``: tokens ->
  ``(B, C, h, w)`` for ViT, else ``None``;
* ``batchnorm_trunk()``: the module whose BatchNorm ``model.bn_rebuild`` rebuilds;
* ``bn_frozen`` / ``bn_rebuild_pending``: the BatchNorm state of the feature extractor, set once through
  :meth:`LanetModel.configure_batchnorm` by :func:`lanet_core.models.factory.build_model` and read by the trainer,
  ``describe`` and the provenance.
"""

from __future__ import annotations

from torch import nn


class LanetModel(nn.Module):
    """Base class of the library's models: defaults of the protocol attributes (module docstring)."""

    gradcam_reshape_transform = None
    bn_frozen: bool = False
    bn_rebuild_pending: bool = False

    def component_modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError(f"{type(self).__name__} must name its components")

    def batchnorm_trunk(self) -> nn.Module:
        """The module whose BatchNorm the trainer rebuilds from training images (``model.bn_rebuild``), called as
        ``trunk(x)``: the ``feature_extractor`` where the model has one, else the whole model."""
        return getattr(self, "feature_extractor", self)

    def configure_batchnorm(self, *, frozen: bool, rebuild_pending: bool) -> None:
        """Freeze the feature extractor's BatchNorm (converted BN-folded weights) or mark it for the trainer's
        rebuild from training-image statistics (``model.bn_rebuild``); recorded on the model."""
        from lanet_core.models.backbones import freeze_batchnorm

        self.bn_rebuild_pending = bool(rebuild_pending)
        self.bn_frozen = bool(frozen)
        if frozen:  # only the pretrained feature extractor; LA-Net / heads keep learning their statistics
            freeze_batchnorm(self.component_modules().get("feature extractor", self))
