"""Every model behind one Generator protocol: VAR, LlamaGen and the raster twins, seeded noise; the zoo of every
entry; weight resolution; sampling settings.  ``zoo.get(name)`` -> ``protocol.build(spec)`` -> ``generate``."""
