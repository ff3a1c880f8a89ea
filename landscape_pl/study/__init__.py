"""Studies: recipes of stages (train, align, fit curves, evaluate, ensemble) that run once and report."""
