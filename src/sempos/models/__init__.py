"""Backbones (ResNet, ViT) and backbone checkpoints."""
