"""Run the benchmarks: `python -m bench` runs all of them, `python -m bench NAME...` some.

Each benchmark measures a reference in the same run and prints our figures as ratios against it.
"""

from __future__ import annotations

import argparse
import importlib

# name → module in this package exposing main(argv: list[str]) -> int
BENCHMARKS: dict[str, str] = {
    "comfyui-client": "comfyui_client",
    "download": "download",
    "weights-check": "weights_check",
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    args, rest = parser.parse_known_args()
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    status = 0
    for name in args.names or list(BENCHMARKS):
        print(f"== {name} ==", flush=True)
        status |= importlib.import_module(f"bench.{BENCHMARKS[name]}").main(rest)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
