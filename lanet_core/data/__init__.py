"""Data: manifests, validation, importers, phantoms, the cached PyTorch dataset."""
