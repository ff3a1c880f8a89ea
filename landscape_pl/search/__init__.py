"""Dynamic String Sampling: strings of trained beads between two networks, kept on disk and resumable."""

from landscape_pl.search.constrained import constrained, string_penalty
from landscape_pl.search.greedy import greedy
from landscape_pl.search.job import Budget, Job, check_settings
from landscape_pl.search.report import CONNECTED, NOT_CONNECTED, summarize
from landscape_pl.search.string import Bead, BeadString, Segment, open_string

__all__ = ["CONNECTED", "NOT_CONNECTED", "Bead", "BeadString", "Budget", "Job", "Segment", "check_settings", "constrained", "greedy",
           "open_string", "string_penalty", "summarize"]
