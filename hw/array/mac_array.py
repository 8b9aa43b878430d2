"""An R x C output-stationary array of dot-product units with exact (or saturating) accumulators."""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Shape, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from qmac.hw.spec.config import ConfigError, CoreConfig
from qmac.hw.spec.formats import mode_flags
from qmac.hw.local_register import LocalRegister
from qmac.hw.array.mac_unit import MacUnit, winograd_correction_delay
from qmac.hw.spec.layouts import accumulator_shape, operand_layout, result_layout
from qmac.hw.ops import delay
from qmac.hw.lanes.lane_multiplicands import LaneMultiplicands
from qmac.hw.lanes.winograd_correction import WinogradCorrection
from qmac.hw.lanes.winograd_pair_product import winograd_correction_format

__all__ = ["MacArray"]


class MacArray(wiring.Component):
    """R x C dot-product units; weight vector ``r`` is broadcast along row ``r``, activation vector ``c``
    along column ``c``.

    A *beat* is one transfer on both operand streams (they are joined: a beat moves when both are valid).
    A *tile* is ``k_beats_m1 + 1`` beats; unit ``(r, c)`` then holds ``sum over beats of dot(w_r, a_c)``.
    ``k_beats_m1`` and ``int4`` are sampled at a tile's first beat and held for the tile.
    (The lanes see ``int4`` through a register, so a tile's first beat waits one cycle after ``int4``
    changes.)

    Accumulation: ``acc <= (first ? 0 : acc) + psum``, exact when the configured accumulator is at least
    :attr:`CoreConfig.exact_acc_format`, else saturated to ``acc_bits`` with the clip recorded per row.

    Drain: at a tile's last beat the accumulators move to a shadow bank that drains one row per ``y``
    transfer (row 0 first) while the next tile accumulates. The pipeline never stalls: no enable fans out
    to its registers, and ``y.ready`` reaches only the shadow banks. Instead a tile's *last* beat is taken
    only when fewer than ``shadow_banks`` tiles are in the pipeline (their last beat taken) or in the
    banks, so that a bank is free when it lands. With a second bank (``shadow_banks = 2``) a tile that
    lands while the first bank drains waits in the second and moves into the first, all units at once,
    as the first bank's last row leaves: the drain reads only the first bank, so ``y`` needs no
    multiplexer and each column one drain chain. With ``k_beats >=``
    :attr:`~qmac.hw.spec.config.CoreConfig.streaming_tile_beats` (``dot_latency + rows + 1`` with one bank)
    and a ready consumer the array accepts a beat every cycle; shorter tiles wait at their last beat.
    (``w.ready`` and ``a.ready`` depend on registers and the other stream's ``valid`` only.)

    Each unit takes its beat flags (accumulate, first, last) from its own
    :class:`~qmac.hw.local_register.LocalRegister` copy of the flag pipeline's last stage, placed near it,
    not from one register that fans out to every unit.

    In W4A8 builds each column forms its lanes' multiplicands from the activation payload once
    (:class:`~qmac.hw.lanes.lane_multiplicands.LaneMultiplicands`, combinational, driven by the held mode
    flags) and its R units share them.

    Latency from a tile's last beat to its first result row: ``dot_latency + 1`` cycles.

    Members
    -------
    w : In(stream.Signature(operand_layout(config, rows)))
    a : In(stream.Signature(operand_layout(config, cols)))
    y : Out(stream.Signature(result_layout(config, buckets=True)))
        Result rows of the units' accumulators (:func:`~qmac.hw.spec.layouts.accumulator_shape`: an LNS
        array sends each unit's fraction-bucket accumulators).
    int4 : In(1)
        Present only with INT4 built beside another INT mode.
    w4a8 : In(1)
        Present only with W4A8 built beside another mode (:func:`~qmac.hw.spec.formats.mode_flags`: with
        ``int4``, all flags low selects the first built mode); sampled and held as ``int4``.
    sparse : In(1)
        Present only in sparse builds: the tile's weights are 2:4 compressed (it only changes what
        ``fire_sparse`` reports: the datapath always selects activations by the indices, and a dense tile
        sends indices (0, 1) per group). Sampled with ``int4``.
    fire_sparse : Out(1)
        Present only in sparse builds: the beat taken is a sparse beat.
    k_beats_m1 : In(k_bits)
    fire : Out(1)
        A beat is taken this cycle.
    fire_first : Out(1)
        The beat taken is the first of its tile.
    fire_int4 : Out(1)
        The beat taken is an INT4 beat.
    fire_w4a8 : Out(1)
        Present only with W4A8 built: the beat taken is a W4A8 beat.
    clipped : Out(1)
        An accumulator saturated this cycle.
    busy : Out(1)
        A tile is open, in the pipeline, or draining.

    Parameters
    ----------
    config : CoreConfig
    unit_module : str or None
        ``None`` elaborates each processing element as a :class:`MacUnit` (what Amaranth's simulator
        needs). A Verilog module name instantiates that module instead, with :class:`MacUnit`'s ports;
        :func:`qmac.hw.array.emit.emit_verilog` emits it once beside the array.
    """

    def __init__(self, config, unit_module=None):
        if not isinstance(config, CoreConfig):
            raise ConfigError(f"MacArray needs a CoreConfig, not {config!r}")
        if unit_module is not None and not (isinstance(unit_module, str) and unit_module.isidentifier()):
            raise ConfigError(f"unit module name must be a Verilog identifier, not {unit_module!r}")
        self._config = config
        self._unit_module = unit_module
        ports = {
            "w": In(stream.Signature(operand_layout(config, config.rows))),
            "a": In(stream.Signature(operand_layout(config, config.cols, activations=True))),
            "y": Out(stream.Signature(result_layout(config, buckets=True))),
            "k_beats_m1": In(config.k_bits),
            "fire": Out(1),
            "fire_first": Out(1),
            "fire_int4": Out(1),
            "clipped": Out(1),
            "busy": Out(1),
        }
        for flag in mode_flags(config.modes):
            ports[flag] = In(1)
        if "w4a8" in config.modes:
            ports["fire_w4a8"] = Out(1)
        if config.sparse:
            ports["sparse"] = In(1)
            ports["fire_sparse"] = Out(1)
        super().__init__(ports)

    @property
    def config(self):
        return self._config

    @property
    def latency(self):
        """Cycles from a tile's last beat to its first result row on ``y`` (no stalls)."""
        return self._config.dot_latency + 1

    def elaborate(self, platform):
        cfg = self._config
        m = Module()

        # -- tile sequencing at the input -----------------------------------------------------------
        beat = Signal(cfg.k_bits)
        tile_k_m1 = Signal(cfg.k_bits)
        first_in = Signal(init=1)   # beat == 0, as a register: it gates fire (below)
        k_m1 = Mux(first_in, self.k_beats_m1, tile_k_m1)
        # last_in (beat == k_m1) gates fire and so every ready: a register for the beats after a tile's
        # first, a compare with zero for the first.
        later_last = Signal()   # beat == tile_k_m1, valid when not first_in
        last_in = Mux(first_in, ~self.k_beats_m1.any(), later_last)
        mode_ready = 1
        if "w4a8" in cfg.modes:
            # As int4 below, a register per mode flag; modes maps each built mode to "it runs".
            mode_q = {f: Signal(name=f) for f in mode_flags(cfg.modes)}
            mode_ready = ~first_in | Cat(q == getattr(self, f) for f, q in mode_q.items()).all()
            modes = {**mode_q, cfg.modes[0]: ~Cat(*mode_q.values()).any() if mode_q else 1}
            int4 = modes.get("int4", 0)
        elif cfg.dual:
            # The INT4 select fans out to every lane, so the lanes see a register, not the int4 port: between
            # tiles it follows int4 one cycle late, and a tile's first beat waits until it has caught up (one
            # cycle after int4 changes). A tile thus still runs in the mode int4 has at its first beat.
            int4 = Signal()
            mode_ready = ~first_in | (int4 == self.int4)
            mode_q = {"int4": int4}
        else:
            int4 = int(cfg.modes == ("int4",))
            mode_q = {}
        if cfg.sparse:
            tile_sparse = Signal()
            sparse = Mux(first_in, self.sparse, tile_sparse)

        # A last beat taken now finds a shadow bank free when it lands: a register (its next value
        # below), so that nothing but a few gates lies between it and the ready outputs.
        slot_free = Signal(init=1)
        take = mode_ready & (~last_in | slot_free)
        fire = Signal()
        m.d.comb += [
            fire.eq(self.w.valid & self.a.valid & take),
            self.w.ready.eq(self.a.valid & take),
            self.a.ready.eq(self.w.valid & take),
            self.fire.eq(fire),
            self.fire_first.eq(fire & first_in),
            self.fire_int4.eq(fire & int4),
        ]
        if "w4a8" in cfg.modes:
            m.d.comb += self.fire_w4a8.eq(fire & modes["w4a8"])
        if cfg.sparse:
            m.d.comb += self.fire_sparse.eq(fire & sparse)
        with m.If(fire):
            m.d.sync += [beat.eq(Mux(last_in, 0, beat + 1)), first_in.eq(last_in), later_last.eq(beat + 1 == k_m1)]
            with m.If(first_in):
                m.d.sync += tile_k_m1.eq(self.k_beats_m1)
                if cfg.sparse:
                    m.d.sync += tile_sparse.eq(self.sparse)
        if mode_q:
            with m.If(first_in & ~fire | fire & last_in):   # the next beat is a tile's first
                m.d.sync += [q.eq(getattr(self, f)) for f, q in mode_q.items()]

        # Beat flags travel beside the partial sums: valid, first, last.
        flags = [(fire, first_in, last_in)]
        for stage in range(cfg.dot_latency):
            regs = tuple(Signal(name=f"{n}_{stage}") for n in ("valid", "first", "last"))
            m.d.sync += [reg.eq(v) for reg, v in zip(regs, flags[-1])]
            flags.append(regs)
        p_valid, p_first, p_last = flags[-1]
        shadow_full = Signal()
        drain_row = Signal(range(cfg.rows))
        shift = self.y.valid & self.y.ready
        drained = shift & (drain_row == cfg.rows - 1)  # the shadow bank's last row leaves at this edge
        land = p_valid & p_last
        if cfg.shadow_banks == 2:
            # The second bank (full only beside a full first bank) takes a landing tile while the first
            # still holds rows after this edge; it moves into the first as the first's last row leaves.
            wait_full = Signal()
            hold = wait_full | shadow_full & ~drained
            advance = wait_full & drained
            banks_next = [shadow_full & ~drained | advance | land & ~hold, wait_full & ~drained | land & hold]
            m.d.sync += wait_full.eq(banks_next[1])
        else:   # a tile may land as the previous one leaves
            banks_next = [shadow_full & ~drained | land]
        m.d.sync += shadow_full.eq(banks_next[0])
        # Tiles next cycle: one per full bank, and one per last beat in flight (taken now, or moving along;
        # the one in the last stage lands now). The slot is free while fewer than shadow_banks are left.
        tiles_next = [fire & last_in, *(v & l for v, _, l in flags[1:-1]), *banks_next]
        if cfg.shadow_banks == 1:
            m.d.sync += slot_free.eq(~Cat(*tiles_next).any())
        else:   # at most one
            seen, two = Const(0), Const(0)
            for tile in tiles_next:
                two, seen = two | seen & tile, seen | tile
            m.d.sync += slot_free.eq(~two)
        acc_en = p_valid

        # -- Winograd corrections, once per column (activations) and per row (weights) ---------------
        if cfg.multiplier_class.corrections:
            ca = [self._corrections(m, f"ca{c}", self.a.payload.data[c], int4) for c in range(cfg.cols)]
            cw = [self._corrections(m, f"cw{r}", self.w.payload.data[r], int4) for r in range(cfg.rows)]

        # -- W4A8 builds: each column's lane multiplicands, formed once and shared by its R units ------
        a_cols = [self.a.payload.data[c] for c in range(cfg.cols)]
        if "w4a8" in cfg.modes:
            for c in range(cfg.cols):
                m.submodules[f"mult{c}"] = mult = LaneMultiplicands(cfg.lanes, cfg.modes)
                m.d.comb += [mult.a.eq(a_cols[c]), *(getattr(mult, f).eq(q) for f, q in mode_q.items())]
                a_cols[c] = mult.m

        # -- the units: row r of each column drains into row r - 1 -----------------------------------
        acc_shape = accumulator_shape(cfg)
        zero = Const(0, Shape.cast(acc_shape).width)
        outs = [[{"shadow": Signal(acc_shape, name=f"shadow{r}_{c}"), "shadow_sat": Signal(name=f"shadow_sat{r}_{c}"),
                  "clipped": Signal(name=f"clipped{r}_{c}")} for c in range(cfg.cols)] for r in range(cfg.rows)]
        for r in range(cfg.rows):
            for c in range(cfg.cols):
                below = outs[r + 1][c] if r + 1 < cfg.rows else None
                # The unit's own copy of the last flag stage: one register would drive every unit's
                # accumulator enable and clear, across the die.
                m.submodules[f"flags{r}_{c}"] = unit_flags = LocalRegister(3)
                m.d.comb += unit_flags.d.eq(Cat(*flags[-2]))
                ins = {"w": self.w.payload.data[r], "a": a_cols[c], "acc_en": unit_flags.q[0],
                       "first": unit_flags.q[1], "last": unit_flags.q[2], "shift": shift,
                       "shadow_in": below["shadow"] if below else zero,
                       "shadow_sat_in": below["shadow_sat"] if below else Const(0, 1)}
                ins.update(mode_q)
                if cfg.shadow_banks == 2:
                    ins["hold"], ins["advance"] = hold, advance
                if cfg.scale_bits:
                    ins["sw"], ins["sa"] = self.w.payload.scale[r], self.a.payload.scale[c]
                if cfg.sparse:
                    ins["meta"] = self.w.payload.meta[r]
                if cfg.multiplier_class.corrections:
                    ins["ca"], ins["cw"] = ca[c], cw[r]
                self._unit(m, f"u{r}_{c}", ins, outs[r][c])
        m.d.comb += self.clipped.eq(sum(u["clipped"] for row in outs for u in row) != 0)

        # Drain: shift rows towards row 0, one per transfer.
        m.d.comb += [
            self.y.valid.eq(shadow_full),
            self.y.payload.data.eq(Cat(Value.cast(u["shadow"]) for u in outs[0])),
            self.y.payload.last.eq(drain_row == cfg.rows - 1),
            self.y.payload.saturated.eq(sum(u["shadow_sat"] for u in outs[0]) != 0),
        ]
        with m.If(shift):
            m.d.sync += drain_row.eq(Mux(drain_row == cfg.rows - 1, 0, drain_row + 1))

        in_flight = sum(v for v, _, _ in flags[1:]) != 0
        m.d.comb += self.busy.eq((beat != 0) | in_flight | shadow_full)
        return m

    def _corrections(self, m, name, vector, int4):
        """The Winograd corrections of one operand vector, one per scale group, delayed to arrive
        :func:`~qmac.hw.array.mac_unit.winograd_correction_delay` cycles after the vector."""
        cfg = self._config
        L = cfg.group_lanes
        bits = winograd_correction_format(L, cfg.modes).bits
        out = Signal(data.ArrayLayout(signed(bits), cfg.scale_groups), name=name)
        for g in range(cfg.scale_groups):
            unit = WinogradCorrection(L, cfg.modes, cfg.tree_levels_per_stage)
            m.submodules[f"{name}_{g}"] = unit
            m.d.comb += unit.v.eq(Cat(vector[g * L + i] for i in range(L)))
            if cfg.dual:
                m.d.comb += unit.int4.eq(int4)
            m.d.comb += out[g].eq(delay(m, unit.sum, winograd_correction_delay(cfg) - unit.latency, f"{name}_{g}_d"))
        return out

    def _unit(self, m, name, ins, outs):
        """Add one processing element driven by ``ins`` and driving ``outs`` (dicts of port name -> value):
        a :class:`MacUnit`, or an ``Instance`` of the separately emitted unit module when ``unit_module`` is
        set (ports connected directly, without intermediate signals: this keeps large arrays fast to emit)."""
        if self._unit_module is None:
            unit = MacUnit(self._config)
            m.submodules[name] = unit
            m.d.comb += [getattr(unit, k).eq(v) for k, v in ins.items()]
            m.d.comb += [v.eq(getattr(unit, k)) for k, v in outs.items()]
            return
        args = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        args.update({f"i_{k}": Value.cast(v) for k, v in ins.items()})
        args.update({f"o_{k}": Value.cast(v) for k, v in outs.items()})
        m.submodules[name] = Instance(self._unit_module, **args)
