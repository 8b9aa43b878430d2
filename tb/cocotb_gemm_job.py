"""cocotb job behind ``qmac gemm --engine icarus``: streams one GEMM through the emitted core.

Reads ``QMAC_JOB`` (an .npz with W, A, mode, gap, ready) and writes ``QMAC_JOB_OUT`` (an .npz with the
result rows' fields, :func:`qmac.sim.packing.result_arrays`, and the core's counters).
"""

import os

import cocotb
import numpy as np

from qmac.sim.packing import result_arrays
from qmac.tb.core_tb import CoreTB
from qmac.tb.runner import config_from_env


@cocotb.test()
async def gemm_job(dut):
    job = np.load(os.environ["QMAC_JOB"])
    tb = CoreTB(dut, config_from_env(), seed=int(job["seed"]))
    await tb.reset()
    await tb.clear()
    scales = (job["w_scales"], job["a_scales"]) if "w_scales" in job else (None, None)
    plan, rows, _ = await tb.run_gemm(str(job["mode"]), job["W"], job["A"], float(job["gap"]),
                                      float(job["ready"]), *scales, sparse=bool(job["sparse"]))
    await tb.wait_idle()
    st = tb.status()
    np.savez(os.environ["QMAC_JOB_OUT"], **result_arrays(rows), cycles=st["cycles"], macs=st["macs"],
             overflow=st["overflow"], error=st["error"])
