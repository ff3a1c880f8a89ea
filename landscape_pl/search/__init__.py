"""Dynamic String Sampling: strings of trained beads between two networks, kept on disk and resumable."""

from landscape_pl.search.constrained import constrained, string_penalty
from landscape_pl.search.greedy import greedy
from landscape_pl.search.job import Budget, Job
from landscape_pl.search.report import CONNECTED, NOT_CONNECTED, report
from landscape_pl.search.string import Bead, BeadString, Segment, open_string

__all__ = ["CONNECTED", "NOT_CONNECTED", "Bead", "BeadString", "Budget", "Job", "Segment", "constrained", "greedy", "open_string", "report", "string_penalty"]
