"""layerkd: measured layer importance and layer-selected students for LLM recommenders."""

__version__ = "0.1.0"
