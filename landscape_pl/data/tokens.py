"""Next-token prediction on sequences of a seeded Markov chain: a language task that needs no download.

Each token depends on the ``order`` tokens before it: every context of ``order`` tokens has
``branching`` possible successors with fixed random probabilities. A model that reads only the
current token cannot do better than guessing among the successors of every earlier token, so the
task needs attention to the positions before (what the GPT experiments train); with ``branching``
> 1 no model is always right.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, TensorDataset

from landscape_pl.data.base import LandscapeDataModule, Split
from landscape_pl.errors import LandscapeError


class MarkovChain:
    """The chain: per context (``order`` tokens, as one index), ``branching`` successors and their probabilities."""

    def __init__(self, vocab_size: int, order: int, branching: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        contexts = vocab_size**order
        self.vocab_size, self.order = vocab_size, order
        self.successors = torch.stack([torch.randperm(vocab_size, generator=generator)[:branching] for _ in range(contexts)])
        self.probabilities = torch.softmax(torch.randn(contexts, branching, generator=generator), dim=1)

    def context(self, window: torch.Tensor) -> torch.Tensor:
        """(n, order) tokens -> (n,) context indices."""
        weights = self.vocab_size ** torch.arange(self.order - 1, -1, -1)
        return (window * weights).sum(1)

    def sample(self, count: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """(count, length) token sequences: ``order`` uniform tokens, then the chain."""
        tokens = torch.empty(count, length, dtype=torch.long)
        tokens[:, : self.order] = torch.randint(self.vocab_size, (count, self.order), generator=generator)
        for position in range(self.order, length):
            context = self.context(tokens[:, position - self.order:position])
            choice = torch.multinomial(self.probabilities[context], 1, generator=generator).squeeze(1)
            tokens[:, position] = self.successors[context, choice]
        return tokens


class TokensDataModule(LandscapeDataModule):
    """``sequences`` sequences of ``length`` + 1 tokens; inputs are the first ``length``, targets the next token at each.

    Batches are (tokens (batch, length), next tokens (batch, length)); a seeded, fixed train/test split
    (``test_fraction``). The task is ``tokens``: per sequence, the mean cross-entropy and accuracy over
    its positions (the first ``order`` - 1 targets are uniform tokens, which no model predicts).
    """

    task = "tokens"

    def __init__(
        self,
        vocab_size: int = 8,
        length: int = 16,
        sequences: int = 2000,
        order: int = 2,
        branching: int = 2,
        chain_seed: int = 0,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int = 1000,
        data_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, data_seed, num_workers)
        for name, value, least in (("vocab_size", vocab_size, 2), ("order", order, 1), ("branching", branching, 1),
                                   ("sequences", sequences, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise LandscapeError(f"data {name}={value!r}: use an integer >= {least} (data.init_args.{name})")
        if branching > vocab_size or length <= order:
            raise LandscapeError(f"data branching={branching} must be <= vocab_size={vocab_size} and length={length} > order={order}")
        self.vocab_size, self.length, self.sequences = vocab_size, length, sequences
        self.order, self.branching, self.chain_seed = order, branching, chain_seed
        self.test_fraction, self.split_seed = test_fraction, split_seed
        self.chain = MarkovChain(vocab_size, order, branching, chain_seed)

    def make_split(self, split: Split, train_transforms: bool) -> Dataset:
        tokens = self.chain.sample(self.sequences, self.length + 1, torch.Generator().manual_seed(self.chain_seed + 1))
        order = torch.randperm(self.sequences, generator=torch.Generator().manual_seed(self.split_seed))
        n_test = round(self.test_fraction * self.sequences)
        index = order[n_test:] if split == "train" else order[:n_test]
        return TensorDataset(tokens[index, :-1], tokens[index, 1:])
