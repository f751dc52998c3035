"""Training: losses and the two-stage sequential semi-supervised trainer."""
