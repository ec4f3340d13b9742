"""Entropy models and coding: integer tables, ANS, fitted histograms, the deep factorized density and the Gaussian conditional."""
