"""Value maps of 4-bit formats, and the tables of ``docs/lns.md``.

Draws ``docs/lns_value_map.png``: for INT4, E2M1 and LNS4 (F = 2), each scaled so that its largest magnitude
is 1 (what per-vector scaling does), the representable positive values and the relative rounding error
``|q(x) - x| / x`` against ``x``, both on log axes. Prints three markdown tables: worst-case relative error
and dynamic range of INT8, INT4, E2M1, LNS8, LNS4 and LNS4 with F = 1; the fraction constants of LNS8 and
LNS4 at the default P; and the widths of a few LogSum accumulations.

Run from the repository root: ``python bench/lns_plot.py [--out docs/lns_value_map.png]``
"""

import argparse
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from qmac.hw.spec.config import DEFAULT_P_BITS as DEFAULT_P  # noqa: E402
from qmac.hw.spec.log_format import LNS4, LNS8  # noqa: E402
from qmac.hw.spec.log_sum import LogSum  # noqa: E402
from qmac.sim.log_format import E2M1, compared_formats, int_value_map, log_value_map  # noqa: E402

PLOTTED = (int_value_map(4), E2M1, log_value_map(LNS4))


def table(header, rows):
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def error_table():
    rows = []
    for vm in compared_formats():
        top = vm.values[-1]
        rows.append((vm.name, len(vm.values), f"{vm.values[0]:.4g}", f"{top:.4g}",
                     f"{vm.dynamic_range:.4g} (2^{math.log2(vm.dynamic_range):.2f})",
                     f"{100 * vm.worst_relative_error():.2f}%",
                     f"{100 * vm.worst_relative_error(top / 2, top):.2f}%"))
    return table(("format", "non-zero magnitudes", "smallest", "largest", "dynamic range",
                  "worst rel. error, smallest..largest", "worst rel. error, top octave"), rows)


def constants_table(fmt, p_bits):
    rows = [(r, c, f"{c / 2 ** p_bits:.6f}", f"{2 ** (r / fmt.buckets):.6f}",
             f"{c - 2 ** (p_bits + r / fmt.buckets):+.4f}")
            for r, c in enumerate(fmt.constants(p_bits))]
    return table(("r", f"C_r (P = {p_bits})", "C_r / 2^P", "2^(r/2^F)", "C_r - 2^(P + r/2^F)"), rows)


def widths_table():
    """Widths of :class:`LogSum` for V products per beat, tiles of ``beats`` beats and one signed scale of
    ``scale_bits`` bits per beat (as a LogDotProduct's ``scale`` input)."""
    rows = []
    for fmt, name in ((LNS8, "LNS8"), (LNS4, "LNS4")):
        for lanes, beats, scale_bits in ((4, 256, 0), (16, 4096, 0), (16, 4096, 4), (64, 4096, 0)):
            scale = (-(1 << (scale_bits - 1)), (1 << (scale_bits - 1)) - 1) if scale_bits else (0, 0)
            s = LogSum(fmt, lanes, beats, *scale, p_bits=DEFAULT_P)
            rows.append((name, lanes, beats, scale_bits, s.q_min, s.offset_max, s.sum_format.bits,
                         s.acc_format.bits, s.result_format.bits, s.result_exponent))
    return table(("format", "V", "beats", "scale_bits", "q_min", "t'_max", "S_r bits", "A_r bits",
                  "result bits", "result exponent"), rows)


def plot(path):
    fig, (ax_values, ax_error) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True,
                                              gridspec_kw={"height_ratios": [1, 2.2]})
    x = np.geomspace(1 / 64, 1.5, 4000)
    for row, vm in enumerate(PLOTTED):
        top = vm.values[-1]
        values = np.asarray(vm.values) / top
        ax_values.plot(values, np.full_like(values, row), "o", label=vm.name)
        q = vm.quantize(x * top) / top
        ax_error.plot(x, 100 * np.abs(q - x) / x,
                      label=f"{vm.name} (worst {100 * vm.worst_relative_error():.1f}%)")
    ax_values.set_yticks(range(len(PLOTTED)), [vm.name for vm in PLOTTED])
    ax_values.set_ylim(-0.6, len(PLOTTED) - 0.4)
    ax_values.set_title("Positive magnitudes, scaled to a largest magnitude of 1")
    ax_error.set_xscale("log", base=2)
    ax_error.set_yscale("log")
    ax_error.set_ylim(0.3, 120)
    ax_error.set_xlabel("x / largest magnitude")
    ax_error.set_ylabel("relative error |q(x) - x| / x  (%)")
    ax_error.set_title("Round-to-nearest error (100% where x rounds to zero)")
    ax_error.grid(True, which="both", alpha=0.3)
    ax_error.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/lns_value_map.png")
    args = parser.parse_args()
    plot(args.out)
    print(error_table())
    for fmt, name in ((LNS8, "LNS8"), (LNS4, "LNS4")):
        print(f"\n{name}:\n{constants_table(fmt, DEFAULT_P)}")
    print("\n" + widths_table())


if __name__ == "__main__":
    main()
