"""Data readers, bundled corpora, collators and datasets for lingvis models."""
