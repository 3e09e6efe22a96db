"""``varbench sweep``: one model generated and scored over a grid of sampling settings and seeds (``run``)."""
