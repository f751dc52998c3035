"""Models: timm feature extractors, LA-Net, baselines, weight conversion."""
