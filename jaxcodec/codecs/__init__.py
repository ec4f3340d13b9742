"""Codecs: the ``Codec`` protocol, the ``.jxc`` container, standard codecs, the papers' baselines and encoder-side search."""
