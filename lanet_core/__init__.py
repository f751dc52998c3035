"""lanet_core: LA-Net (Fan et al., Medical Image Analysis 90:102960, 2023) re-implemented for a reproducible study.

Sub-packages: ``data`` (manifests, importers, phantoms, dataset), ``models`` (timm feature extractors,
LA-Net, baselines), ``training`` (losses, the two-stage trainer); modules ``metrics``, ``stats``,
``runs`` (config-keyed run cache), ``study`` (papermill runner).
"""

__version__ = "0.1.0"
