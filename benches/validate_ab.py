#!/usr/bin/env python3
"""Paired runs of several `dropfolder` release binaries against `gzip -dc` on one file.

Usage: benches/validate_ab.py N FILE BINARY [BINARY ...]

Each of the N rounds times `gzip -dc FILE` and then every binary's `validate FILE` (in
alternating order, so that none always runs first), and prints for each binary the median
of its ratios to that round's gzip time, with their range. For A/B tries of the hot path
that `cargo bench --bench validate` (one build and one baseline) does not cover; the config
is the one that bench writes (run it once first).
"""
import statistics
import subprocess
import sys
import time

CONFIG = "target/bench-data/validate.toml"


def wall(command):
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rounds, path, binaries = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    ratios = {binary: [] for binary in binaries}
    gzip = []
    for i in range(rounds):
        baseline = wall(["gzip", "-dc", path])
        gzip.append(baseline)
        for binary in binaries if i % 2 == 0 else binaries[::-1]:
            ratios[binary].append(wall([binary, "--config", CONFIG, "validate", path]) / baseline)
    print(f"gzip -dc: median {statistics.median(gzip):.3f} s over {rounds} rounds")
    for binary in binaries:
        r = sorted(ratios[binary])
        print(f"{binary}: {statistics.median(r):.2f}x ({r[0]:.2f}-{r[-1]:.2f})")


if __name__ == "__main__":
    main()
