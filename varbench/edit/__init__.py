"""``varbench edit``: VAR's zero-shot in-painting, out-painting and class-conditional editing, and its benchmark."""
