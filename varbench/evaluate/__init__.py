"""``varbench fid`` and ``varbench ref``: sample sets (``samples``), their cached features (``cache``), reference
statistics (``reference``), scoring in the ADM protocol (``score``) and the torch-fidelity / clean-fid cross-checks
(``backends``)."""
