"""Evaluation: metrics, rate-distortion runs on real bytes, BD-rate and plots."""
