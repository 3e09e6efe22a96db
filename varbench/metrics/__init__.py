"""Metrics as pure functions over feature arrays (``fid``, ``inception_score``, ``prec_recall``, ``kid``) and the
registry of every metric key, its direction and format (``registry``)."""
