"""The library: every analysis as a function on networks (nn.Modules or checkpoints) and data,
returning a Result with ``rows``/``summary``, ``.save(folder)`` and ``.plot()``."""
