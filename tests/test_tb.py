"""The cocotb regression (tb/cocotb_core.py) on the emitted Verilog, on both simulators, for a compact
matrix of configs that covers every mode (INT8, INT4, W4A8, LNS8 with F = 3 and 4, LNS4), dual-mode lanes, DSP lanes (their portable
form), odd array shapes, scales of every kind, 2:4 sparsity, the output stage and saturating accumulators."""

import pytest

from qmac.hw.spec.config import PRESETS, CoreConfig
from qmac.tb.runner import SIMULATORS, run_cocotb

CONFIGS = {
    "tiny-dual": PRESETS["tiny"],
    "int8-3x2-v8": CoreConfig(rows=3, cols=2, lanes=8, modes=("int8",), max_k=512),
    "int4-2x3-v4": CoreConfig(rows=2, cols=3, lanes=4, modes=("int4",), max_k=256, tree_levels_per_stage=1),
    "mult18-dual": PRESETS["tiny"].replace(multiplier="mult18"),
    "mult18-fip-vsq-dual": CoreConfig(rows=2, cols=3, lanes=4, modes=("int8", "int4"), max_k=256, scale_bits=4,
                                      scale_lanes=2, multiplier="mult18_fip"),
    "sb_mac16-int4-3x2": CoreConfig(rows=3, cols=2, lanes=4, modes=("int4",), max_k=256, multiplier="sb_mac16"),
    "saturating-dual": PRESETS["tiny"].replace(acc_bits=20, max_k=512),
    "vsq-int-dual": PRESETS["tiny-vsq"],
    "output-stage-dual": PRESETS["tiny-out"],
    "sparse-dual": PRESETS["tiny-sparse"],
    "sparse-vsq-int4": CoreConfig(rows=3, cols=2, lanes=4, modes=("int4",), max_k=256, sparse=True, scale_bits=4,
                                  scale_lanes=2),
    "vsq-pow2-int8-sat": CoreConfig(rows=2, cols=3, lanes=4, modes=("int8",), max_k=256, scale_bits=3,
                                    scale_kind="pow2", scale_lanes=2, acc_bits=34),
    "w4a8-dual": PRESETS["tiny-w4a8"],
    "sb_mac16-int4-w4a8-2x3": CoreConfig(rows=2, cols=3, lanes=4, modes=("int4", "w4a8"), max_k=256,
                                         multiplier="sb_mac16"),
    "w4a8-int4-2banks": CoreConfig(rows=3, cols=2, lanes=4, modes=("int4", "w4a8"), max_k=256, shadow_banks=2),
    "w4a8-vsq-out": CoreConfig(rows=3, cols=2, lanes=4, modes=("w4a8",), max_k=256, scale_bits=4, scale_lanes=2,
                               output_stage=True, multiplier="logic_pipelined"),
    "lns8-3x2-v4-logout": CoreConfig(rows=3, cols=2, lanes=4, modes=("lns8",), max_k=256, log_output=True),
    "lns4-vsq-count-floor": CoreConfig(rows=2, cols=3, lanes=4, modes=("lns4",), max_k=256, scale_bits=3,
                                       scale_kind="log", scale_lanes=2, bucket_organisation="count", q_floor=-2,
                                       p_bits=9),
    "lns8-hybrid-b1-vsq": CoreConfig(rows=2, cols=3, lanes=4, modes=("lns8",), max_k=256, scale_bits=2,
                                     scale_kind="log", scale_lanes=2, bucket_fraction_bits=1, mantissa_bits=5),
    "lns8f4-b0-vsq-floor": CoreConfig(rows=2, cols=2, lanes=4, modes=("lns8",), max_k=256, frac_bits=4, scale_bits=6,
                                      scale_kind="log", scale_lanes=2, bucket_fraction_bits=0, mantissa_bits=8,
                                      q_floor=-4),
    # Windowed accumulation without a floor: a 12-bit window at each beat's largest product, 23-bit mantissas.
    "lns8f4-b0-vsq-window": CoreConfig(rows=2, cols=2, lanes=4, modes=("lns8",), max_k=256, frac_bits=4, scale_bits=6,
                                       scale_kind="log", scale_lanes=2, bucket_fraction_bits=0, mantissa_bits=8,
                                       window_bits=12),
}


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("name", CONFIGS)
def test_cocotb_regression(sim, name, tb_build_root):
    tests, failed, xml = run_cocotb(CONFIGS[name], sim, "qmac.tb.cocotb_core", build_root=tb_build_root)
    assert tests >= 12, f"only {tests} cocotb tests ran; see {xml}"
    assert failed == 0, f"{failed} of {tests} cocotb tests failed; see {xml.parent / 'sim.log'}"
