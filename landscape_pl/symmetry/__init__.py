"""Weight-space permutation symmetry: specs, applying permutations (hard or soft), and alignment.

- ``spec_of(network)``: the network's ``PermutationSpec`` (declared, registered, or derived from its
  traced graph), checked by permuting a copy; ``check_spec`` runs that check alone.
- ``permute(state, spec, perms)``: a permuted state dict; a permutation is an index vector or a
  dense (soft) matrix, differentiable in the latter (what PAM relaxes).
- ``align_activations`` (algorithm 1 of the alignment paper; groups without probes, attention heads,
  weight matched: ``weight_matched(spec)``), ``match_weights`` / ``weight_match`` (Git Re-Basin,
  the latter with sweeps and objective gain), ``find_permutation(net_a, net_b, method, batches)`` for either.
- ``cross_correlations``, ``signature``, ``correlation_signature``, ``linear_midpoint``: how well units correspond.
"""

from landscape_pl.symmetry.activation import Correlation, align_activations, assign, cross_correlations, weight_matched
from landscape_pl.symmetry.apply import (
    as_matrix,
    from_lists,
    identity,
    inverse,
    permute,
    permute_axis,
    permute_network,
    random_permutations,
    to_lists,
)
from landscape_pl.symmetry.check import check_spec
from landscape_pl.symmetry.correlation import correlation_signature, linear_midpoint, mean_correlation, signature
from landscape_pl.symmetry.derive import register, spec_of
from landscape_pl.symmetry.pair import check_pair, find_permutation
from landscape_pl.symmetry.spec import Axis, Group, PermutationSpec, Probe
from landscape_pl.symmetry.weight_matching import WeightMatch, match_weights, weight_match

__all__ = [
    "Axis", "Correlation", "Group", "PermutationSpec", "Probe", "WeightMatch", "align_activations", "as_matrix",
    "assign", "check_pair", "check_spec", "correlation_signature", "cross_correlations", "find_permutation",
    "from_lists", "identity", "inverse", "linear_midpoint", "match_weights", "mean_correlation", "permute",
    "permute_axis", "permute_network", "random_permutations", "register", "signature", "spec_of", "to_lists",
    "weight_match", "weight_matched",
]
