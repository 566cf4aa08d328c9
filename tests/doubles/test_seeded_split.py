"""A seeded ``random_split`` / ``SAMPLE ... SEED`` on the embedded engine draws from (row content, seed):
the seed is part of the draw (issue 27: leaving it out of ``_content_hash`` passed every test)."""
from __future__ import annotations

from typing import Any


def test_two_seeds_give_two_splits_and_one_seed_gives_one(embedded_session: Any) -> None:
    df = embedded_session.sql("select seq4() as ID from table(generator(rowcount => 2000))")

    def split(seed: int) -> list[int]:
        first, _ = df.random_split([0.5, 0.5], seed=seed)
        return sorted(first.to_pandas()["ID"].tolist())

    def sample(seed: int) -> list[int]:  # Snowpark's sample() takes no seed: SQL's SAMPLE ... SEED does
        rows = embedded_session.sql(
            f"select ID from (select seq4() as ID from table(generator(rowcount => 2000))) sample (30) seed ({seed})"
        ).collect()
        return sorted(r[0] for r in rows)

    assert split(1) == split(1) and sample(5) == sample(5)
    assert split(1) != split(2)
    assert sample(5) != sample(6)
