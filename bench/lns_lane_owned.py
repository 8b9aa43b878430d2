"""Lane-owned LNS accumulation against the per-beat bucket trees: area of the accumulation alone.

Issue #16 item 3 asks whether accumulating over time pays: each lane owns its ``2**b`` bucket accumulators
and adds one product per cycle to the one its fraction picks (a bucket sees at most one add per cycle), so
no per-beat tree is needed; at the end of a tile the ``V`` lanes' buckets are summed, one bucket per cycle,
by one tree shared over the buckets. docs/lns.md, "Lane-owned accumulation", has the table and the verdict.

Both sketches start from the same per-lane input, the term a product adds (``(-1)**s * M_l * 2**q'``, what
:class:`~qmac.hw.log_datapath.log_dot_product.LogDotProduct` forms in every lane for either organisation)
and its bucket, so the front end (decoding, exponent adders, mantissa table, shifter) is left out of both:

- **per-beat trees** (qmac's ``"tree"`` organisation): ``2**b`` gated adder trees over the ``V`` lanes, a
  registered beat sum per bucket, then ``2**b`` unit accumulators ``A_h <= (first ? 0 : A_h) + sums[h]``;
- **lane-owned**: per lane ``2**b`` registers, ``R_ih <= (first ? 0 : R_ih) + (h_i == h ? term_i : 0)``
  (one adder per lane, its input selected from the lane's buckets), then one ``V``-input tree over the lanes
  of the bucket ``drain`` selects, registered. This is a lower bound of a real lane-owned unit: it has no
  second set of lane registers, so the next tile could not start before the ``2**b`` drain cycles end.

Widths are qmac's own (:class:`~qmac.hw.spec.log_sum.LogSum`): a term of ``q'_max + Pm + 2`` bits, beat sums
and unit accumulators of ``sum_format`` and ``acc_format``, lane registers of the format of ``beats`` terms.
Yosys ``synth -flatten``, ``stat -tech cmos`` (:func:`qmac.toolchain.synth.synth_generic`).

Run from the repository root::

    python bench/lns_lane_owned.py [--lanes 16] [--max-k 4096]
"""

import argparse

from amaranth.back import verilog
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.ops import adder_tree
from qmac.hw.spec.log_format import LNS8, LogFormat
from qmac.hw.spec.log_sum import LogSum
from qmac.toolchain.synth import synth_generic

#: (label, LogSum keyword arguments besides products and beats) of the table: the exact LNS8 scheme and
#: the hybrid b = 0 variants docs/lns.md recommends.
VARIANTS = [
    ("LNS8 exact (b = F = 3)", dict(fmt=LNS8)),
    ("LNS8 b = 1, Pm = 6", dict(fmt=LNS8, bucket_fraction_bits=1, mantissa_bits=6)),
    ("LNS8 b = 0, Pm = 6, q_floor = -8", dict(fmt=LNS8, bucket_fraction_bits=0, mantissa_bits=6, q_floor=-8)),
    ("LNS8 F = 4, S = 6, b = 0, Pm = 8, q_floor = -6",
     dict(fmt=LogFormat(8, 4), scale_lo=-64, scale_hi=62, bucket_fraction_bits=0, mantissa_bits=8, q_floor=-6)),
]


def term_bits(spec):
    """Width of one signed lane term ``(-1)**s * M_l * 2**q'``."""
    return spec.bucket_format(1).bits


class _Inputs(wiring.Component):
    """The per-lane terms and buckets both sketches take, and ``first`` (the first beat of a tile)."""

    def __init__(self, spec, ports):
        self.spec = spec
        lanes = spec.products
        super().__init__({"term": In(data.ArrayLayout(signed(term_bits(spec)), lanes)),
                          "bucket": In(data.ArrayLayout(unsigned(max(1, spec.fraction_bits)), lanes)),
                          "first": In(1), **ports})


class BeatTrees(_Inputs):
    """Per-beat gated trees, registered beat sums, unit accumulators (qmac's ``"tree"`` organisation)."""

    def __init__(self, spec):
        super().__init__(spec, {"acc": Out(data.ArrayLayout(signed(spec.acc_format.bits), spec.buckets))})

    def elaborate(self, platform):
        m, spec = Module(), self.spec
        for h in range(spec.buckets):
            beat = Signal(signed(spec.sum_format.bits), name=f"sum{h}")
            m.d.sync += beat.eq(adder_tree([Mux(self.bucket[i] == h, self.term[i], 0)
                                            for i in range(spec.products)]))
            m.d.sync += self.acc[h].eq(Mux(self.first, 0, self.acc[h]) + beat)
        return m


class LaneOwned(_Inputs):
    """Each lane's own bucket registers, one add per lane per cycle; one tree drains a bucket per cycle."""

    def __init__(self, spec):
        self.lane_format = spec.bucket_format(spec.beats)
        super().__init__(spec, {"drain": In(unsigned(max(1, spec.fraction_bits))),
                                "total": Out(signed(spec.acc_format.bits))})

    def elaborate(self, platform):
        m, spec = Module(), self.spec
        owned = []
        for i in range(spec.products):
            regs = [Signal(signed(self.lane_format.bits), name=f"lane{i}_bucket{h}") for h in range(spec.buckets)]
            picked = regs[0]
            for h, reg in enumerate(regs[1:], 1):
                picked = Mux(self.bucket[i] == h, reg, picked)
            total = Mux(self.first, 0, picked) + self.term[i]
            for h, reg in enumerate(regs):
                m.d.sync += reg.eq(Mux(self.bucket[i] == h, total, Mux(self.first, 0, reg)))
            owned.append(regs)
        drained = []
        for regs in owned:
            value = regs[0]
            for h, reg in enumerate(regs[1:], 1):
                value = Mux(self.drain == h, reg, value)
            drained.append(value)
        m.d.sync += self.total.eq(adder_tree(drained))
        return m


def transistors(component, name):
    return synth_generic(verilog.convert(component, name=name, emit_src=False), name)["transistors"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lanes", type=int, default=16)
    parser.add_argument("--max-k", type=int, default=4096)
    args = parser.parse_args()
    beats = args.max_k // args.lanes
    print(f"V = {args.lanes}, {beats} beats per tile (max_k = {args.max_k}); transistors per lane")
    print("| variant | buckets | term bits | beat sum / unit accumulator bits | lane register bits "
          "| per-beat trees | lane-owned | lane-owned / trees |")
    print("|---|---|---|---|---|---|---|---|")
    for label, kwargs in VARIANTS:
        spec = LogSum(products=args.lanes, beats=beats, **kwargs)
        trees = transistors(BeatTrees(spec), "beat_trees") / args.lanes
        owned = transistors(LaneOwned(spec), "lane_owned") / args.lanes
        print(f"| {label} | {spec.buckets} | {term_bits(spec)} | {spec.sum_format.bits} / {spec.acc_format.bits} "
              f"| {spec.bucket_format(beats).bits} | {trees:.0f} | {owned:.0f} | {owned / trees:.2f} |", flush=True)


if __name__ == "__main__":
    main()
