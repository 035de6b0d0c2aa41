"""`siamese pairs`: freeze a deterministic, balanced verification protocol as a CSV pair list."""

from __future__ import annotations

from siamese.cli.common import console, user_errors
from siamese.cli.options import (
    ForgeriesOpt,
    ForgeryFractionOpt,
    NumPairsOpt,
    PairsDataArg,
    PairsOutOpt,
    SeedOpt,
    SplitFromOpt,
    SplitOpt,
)
from siamese.errors import ConfigError


def pairs_command(
    data: PairsDataArg,
    out: PairsOutOpt,
    num_pairs: NumPairsOpt = 2000,
    forgeries: ForgeriesOpt = None,
    forgery_fraction: ForgeryFractionOpt = None,
    seed: SeedOpt = 0,
    split_from: SplitFromOpt = None,
    split: SplitOpt = None,
) -> None:
    """Generate a deterministic, balanced pair list from DATA and write it as CSV."""
    with user_errors():
        if split is not None and split_from is None:
            raise ConfigError("--split needs --split-from RUN (the run whose split.json defines it)")
        if forgery_fraction is not None and forgeries is None:
            raise ConfigError("--forgery-fraction needs --forgeries DIR")
        from siamese.data import generate_pairs, load_split_index, write_pairs_csv

        part = (split or "test") if split_from is not None else "all"
        index = load_split_index(data, forgeries, split_from, part)
        fraction = 0.5 if forgery_fraction is None else forgery_fraction
        pairs = generate_pairs(index, num_pairs, seed=seed, forgery_fraction=fraction)
        write_pairs_csv(pairs, out, data)
        forged = {index.records[i].path for i in index.forgeries()}
        n_same = sum(1 for _, _, same in pairs if same)
        n_forged = sum(1 for _, b, same in pairs if not same and b in forged)
        images = {p for a, b, _ in pairs for p in (a, b)}
        where = f" ({part} identities of {split_from / 'split.json'})" if split_from is not None else ""
        console.print(
            f"wrote {len(pairs)} pairs to {out}: {n_same} genuine, {len(pairs) - n_same} impostor"
            + (f" ({n_forged} skilled forgeries)" if forgeries is not None else "")
            + f"; {len(images)} images of {len(index.identities)} identities{where}",
            highlight=False,
            soft_wrap=True,
        )
