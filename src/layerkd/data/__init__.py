"""Data: synthetic generator, real Amazon loaders, downloads, sample preparation."""
