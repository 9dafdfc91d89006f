"""Training: autoencoders -> single-modality diffusion -> joint SyncVP (see docs/training.md)."""
