"""Pure metrics over results: profiles along paths, and (in their own modules) PCA, lengths, spectra."""

from landscape_pl.analysis.profile import barrier, first_increase, local_minima, plateau_length, summarize_profile

__all__ = ["barrier", "first_increase", "local_minima", "plateau_length", "summarize_profile"]
