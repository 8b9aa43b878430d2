"""The hardware of each datapath, found by its spec class (:data:`qmac.hw.spec.datapath.DATAPATHS`)."""

from dataclasses import dataclass

from qmac.hw.int_datapath.int_beat_sum import IntBeatSum
from qmac.hw.log_datapath.log_beat_sum import LogBeatSum
from qmac.hw.log_datapath.log_combine import LogCombine
from qmac.hw.spec.datapath import IntDatapath, LogDatapath

__all__ = ["DatapathHardware", "HARDWARE", "hardware"]


@dataclass(frozen=True)
class DatapathHardware:
    """The gateware of one datapath.

    Attributes
    ----------
    beat_sum : type
        Built from the config once per :class:`~qmac.hw.array.mac_unit.MacUnit`; its
        ``accumulate(m, unit, acc)`` adds the unit's per-beat sum to the unit's module and returns the
        accumulator's next value and whether it saturated.
    post_array : type or None
        The stage between the array's result stream and the output stage, built from the config: a
        component with ``i`` (the array's rows, :func:`~qmac.hw.spec.layouts.result_layout` with
        ``buckets``), ``o`` (:func:`~qmac.hw.spec.layouts.result_layout`), ``busy`` and ``latency``
        (:attr:`Datapath.post_array_latency <qmac.hw.spec.datapath.Datapath.post_array_latency>`); ``None``
        when the array's rows are the results.
    """
    beat_sum: type
    post_array: type | None = None


#: Spec class -> its hardware.
HARDWARE = {
    IntDatapath: DatapathHardware(IntBeatSum),
    LogDatapath: DatapathHardware(LogBeatSum, LogCombine),
}


def hardware(config):
    """The :class:`DatapathHardware` of ``config.datapath``."""
    return HARDWARE[type(config.datapath)]
