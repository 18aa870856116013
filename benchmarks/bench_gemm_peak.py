"""Measure this machine's matmul peak, the denominator of model FLOPs utilisation (MFU).

    python benchmarks/bench_gemm_peak.py                  # fp32, n=2048, 1 and 2 threads
    python benchmarks/bench_gemm_peak.py --threads 1 2 4 --n 1024 2048 --bf16
    python benchmarks/bench_gemm_peak.py --device cuda --bf16   # on a GPU machine

Prints the best-of-repeats FLOP/s of one (n, n) @ (n, n) torch.matmul per thread count
(CPU) and dtype. Machine load from other processes lowers the numbers: the best run is
the closest to the hardware's attainable peak. DESIGN.md records ~148 GFLOP/s fp32 with
2 threads on the 2-core development machine, and bf16 as ~500x slower there.
"""

from __future__ import annotations

import argparse
import os

import torch

from stepdiff.train.flops import measure_gemm_peak


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU threads")
    parser.add_argument("--n", type=int, nargs="+", default=[2048], help="matrix sides")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best counts")
    parser.add_argument("--bf16", action="store_true", help="also time bfloat16")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    dtypes = [torch.float32] + ([torch.bfloat16] if args.bf16 else [])
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, device {args.device}")
    threads = args.threads if args.device == "cpu" else [torch.get_num_threads()]
    for count in threads:
        torch.set_num_threads(count)
        for dtype in dtypes:
            for n in args.n:
                # bf16 on CPUs without AMX/AVX512-BF16 is slow: keep its matrices small.
                side = min(n, 512) if dtype == torch.bfloat16 and args.device == "cpu" else n
                peak = measure_gemm_peak(side, args.repeats, dtype, args.device)
                print(
                    f"threads={count:<3} {str(dtype).removeprefix('torch.'):<9} n={side:<6} "
                    f"{peak / 1e9:10.1f} GFLOP/s"
                )


if __name__ == "__main__":
    main()
