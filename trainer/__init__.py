"""trainer: evolution strategies with low-rank perturbations in a patched, batched forward pass."""
