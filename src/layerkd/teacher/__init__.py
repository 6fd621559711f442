"""Teacher stages: backbone and item features, task fine-tuning, the cached analysis pass."""
