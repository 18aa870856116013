"""The tail of a sharded datagen run on worker processes: shards handed out in index
order against largest first, as the time of the last worker to finish (makespan) in
items, each item taking the same time, over random sets of item keys hashed into shards
as the pipeline does.

    .venv/bin/python benchmarks/bench_shard_order.py [--items 353] [--workers 2]
"""

from __future__ import annotations

import argparse
import heapq
import random
from collections.abc import Iterable, Sequence

from stepdiff.datagen.pipeline import largest_first
from stepdiff.datagen.runner import stable_hash


def makespan(order: Iterable[int], sizes: Sequence[int], workers: int) -> int:
    """When the last worker finishes, each taking the next shard as it becomes free."""
    free = [0] * workers
    for index in order:
        heapq.heappush(free, heapq.heappop(free) + sizes[index])
    return max(free)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=353)  # the QA run of docs/datagen.md
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(0)
    print(f"{args.items} items, {args.workers} workers, mean of {args.trials} key sets")
    print("| shards | index order | largest first | perfect balance |\n|---|---|---|---|")
    for count in (4 * args.workers, 8 * args.workers):
        index_order, longest = 0, 0
        for _ in range(args.trials):
            sizes = [0] * count
            for item in range(args.items):
                sizes[stable_hash(f"{item}-{rng.random()}") % count] += 1
            index_order += makespan(range(count), sizes, args.workers)
            longest += makespan(largest_first(sizes), sizes, args.workers)
        print(
            f"| {count} | {index_order / args.trials:.1f} | {longest / args.trials:.1f} | "
            f"{args.items / args.workers:.1f} |"
        )


if __name__ == "__main__":
    main()
