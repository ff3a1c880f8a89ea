"""Greedy Dynamic String Sampling (algorithm 1 of Freeman & Bruna 2017), depth first.

The recursion FindConnection(Φ1, Φ2) is run as a loop over the string on disk: take the leftmost
segment whose interpolated maximum exceeds L0, insert a bead at its maximum (or t = 0.5), train the
bead to α·L0, repeat. Visiting the leftmost failing segment first is exactly the order of the
recursion (left branch before right), and the loop needs no state beyond the string itself, which is
what makes a run resumable after any bead.
"""

from __future__ import annotations

from landscape_pl.search.job import Job, budget_spent
from landscape_pl.search.training import train_bead


def failing_segment(job: Job) -> tuple[int | None, bool]:
    """(index of the leftmost segment above L0 whose new bead fits the depth budget, whether any was too deep)."""
    too_deep = False
    beads = job.string.beads
    for index in range(len(beads) - 1):
        if job.segment(index).max_loss <= job.threshold:
            continue
        if max(beads[index].depth, beads[index + 1].depth) + 1 > job.budget.depth:
            too_deep = True
            continue
        return index, too_deep
    return None, too_deep


def insert_bead(job: Job, index: int) -> None:
    """Lines 7-9: a bead at t* between beads ``index`` and ``index + 1``, trained to α·L0, saved."""
    string = job.string
    left, right = string.beads[index], string.beads[index + 1]
    t_star = job.segment(index).t_star(job.insert_at)
    network = job.new_network()
    network.load_state_dict(job.probe.between(string.state(left), string.state(right), t_star))
    steps_left = job.steps_left()
    max_steps = job.bead_steps if steps_left is None else min(job.bead_steps, steps_left)
    steps, loss = train_bead(
        network, job.datamodule, string.task, job.optimizer, job.probe.loss, job.alpha * job.threshold,
        max_steps, job.check_every, job.seed + job.next_id, job.root, job.accelerator,
    )
    string.progress["steps"] += steps
    bead = string.add(index + 1, network, loss, max(left.depth, right.depth) + 1, steps)
    job.on_bead(bead)


def greedy(job: Job) -> str | None:
    """Grow the string until every segment is below L0 (returns None) or a budget is spent (the reason)."""
    while True:
        stuck = [b for b in job.string.beads[1:-1] if b.loss > job.threshold]
        if stuck:
            spent = budget_spent(job)
            because = f" ({spent})" if spent and spent.startswith("training") else ""
            return f"bead {stuck[0].file} stayed above L0 (loss {stuck[0].loss:.4g}) after {stuck[0].steps} steps{because}"
        index, too_deep = failing_segment(job)
        if index is None:
            return f"depth budget spent (depth {job.budget.depth})" if too_deep else None
        reason = budget_spent(job)
        if reason:
            return reason
        insert_bead(job, index)
