"""Swin-UMamba-aware nnU-Net experiment planning."""
