"""Entropy models and coding: integer tables, ANS, the deep factorized density and the Gaussian conditional."""
