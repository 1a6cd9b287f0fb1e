"""Evaluation: features, kNN, linear probe, transfer, semi-supervised fine-tuning."""
