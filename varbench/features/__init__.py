"""Feature extractors (``base``: the protocol and feature names): the ADM evaluator's 2015 TF Inception
(``inception``, network in ``inception_net``)."""
