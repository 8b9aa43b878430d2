// Compiled driver of the core, the one beat loop for both of its users: it streams a whole GEMM's beats
// through the Verilated model and collects the result rows, with the protocol of qmac.tb.core_tb.CoreTB: inputs
// change while the clock is low, a transfer happens at the rising edge when valid and ready are both high.
//
// * The fast RTL engine (qmac.tb.verilator_engine) builds it around the emitted RTL as a shared library and
//   calls qmac_run through ctypes.
// * The energy flow (qmac.toolchain.gate_sim) builds it with -DQMAC_TOGGLES around the gate-level netlist,
//   Verilated with --coverage-toggle, into an executable: main() below reads a job file, runs the same loop with
//   valid and ready held high, and writes the result rows and Verilator's toggle counts of every net for the
//   window from the first beat until the core is idle again.
//
// Payloads cross the C interface as little-endian 32-bit words, ceil(width / 32) per payload (the storage
// Verilator gives a port: CData/SData/IData = 1 word, QData = 2, VlWide<N> = N). Built with
// -DQMAC_REQUANT on a core with the output stage (a requant stream) and -DQMAC_LOG_SHIFT on one with
// log_output (ctrl.log_shift). Port names are Verilator's: "__" in a Verilog name becomes "___05F".

#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>

#include "Vqmac_core.h"
#include "verilated.h"
#ifdef QMAC_TOGGLES
#include <cstdio>
#include <vector>

#include "verilated_cov.h"
#endif

namespace {

template <typename T>
constexpr unsigned words_of() {
    if constexpr (std::is_integral_v<T>) return sizeof(T) > 4 ? 2 : 1;
    else return sizeof(T) / 4;  // VlWide<N>: N 32-bit words
}

template <typename T>
void put(T& port, const uint32_t* w) {
    if constexpr (std::is_integral_v<T>) {
        uint64_t v = w[0];
        if constexpr (sizeof(T) > 4) v |= uint64_t(w[1]) << 32;
        port = T(v);
    } else {
        std::memcpy(port.data(), w, sizeof(T));
    }
}

template <typename T>
void get(const T& port, uint32_t* w) {
    if constexpr (std::is_integral_v<T>) {
        w[0] = uint32_t(port);
        if constexpr (sizeof(T) > 4) w[1] = uint32_t(uint64_t(port) >> 32);
    } else {
        std::memcpy(w, port.data(), sizeof(T));
    }
}

// Seeded uniform draws in [0, 1) (splitmix64): the valid gaps and ready drops.
struct Rng {
    uint64_t s;
    double next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return double((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
    }
};

// One input stream: the words still to send, the one on the bus (valid high) until it is taken.
struct Source {
    const uint32_t* words;
    uint64_t count, stride, sent = 0;
    bool valid = false;

    // Before the edge: present the next word unless this cycle is a gap (probability ``gap``).
    template <typename P>
    bool drive(P& payload, Rng& rng, double gap) {
        if (!valid && sent < count && !(rng.next() < gap)) {
            put(payload, words + sent * stride);
            valid = true;
        }
        return valid;
    }
    bool done() const { return sent == count; }
};

struct Core {
    VerilatedContext ctx;
    std::unique_ptr<Vqmac_core> top{new Vqmac_core{&ctx}};

    // Inputs are set with the clock low; eval() then settles the combinational outputs (the readies).
    void settle() { top->clk = 0; top->eval(); }
    void edge() { top->clk = 1; top->eval(); }
    void cycle() { settle(); edge(); }
    // The measured window starts here: the toggle counters restart (no-op without QMAC_TOGGLES).
    void start_window() {
#ifdef QMAC_TOGGLES
        ctx.coveragep()->zero();
#endif
    }
};

// The body of qmac_run (below) on a given core, so that main() can read its toggle counts afterwards.
int stream(Core& c, const uint32_t* w, const uint32_t* a, uint64_t beats, const uint32_t* requant,
           uint64_t requant_count, uint32_t* y, uint64_t rows, uint32_t mode, uint32_t sparse,
           uint32_t k_beats_m1, uint32_t log_shift, uint64_t seed, double gap, double ready,
           uint64_t idle_limit, uint64_t* status) {
    Vqmac_core* t = c.top.get();
    Rng rng{seed};
    t->rst = 1;
    c.cycle();
    c.cycle();
    t->rst = 0;
    t->ctrl___05Fclear = 1;
    c.cycle();
    t->ctrl___05Fclear = 0;
    t->ctrl___05Fmode = mode;
    t->ctrl___05Fsparse = sparse;
    t->ctrl___05Fk_beats_m1 = k_beats_m1;
#ifdef QMAC_LOG_SHIFT
    t->ctrl___05Flog_shift = log_shift;
#else
    (void)log_shift;
#endif
    t->y___05Fready = 1;  // no row comes before the first beat; high already, it does not toggle at ready = 1
    c.cycle();
    c.start_window();
    const unsigned ys = words_of<decltype(Vqmac_core::y___05Fpayload)>();
    Source ws{w, beats, words_of<decltype(Vqmac_core::w___05Fpayload)>()};
    Source as{a, beats, words_of<decltype(Vqmac_core::a___05Fpayload)>()};
#ifdef QMAC_REQUANT
    Source rs{requant, requant_count, words_of<decltype(Vqmac_core::requant___05Fpayload)>()};
#else
    (void)requant, (void)requant_count;
#endif
    uint64_t got = 0, cycles = 0, idle = 0;
    while (got < rows) {
        t->w___05Fvalid = ws.drive(t->w___05Fpayload, rng, gap);
        t->a___05Fvalid = as.drive(t->a___05Fpayload, rng, gap);
#ifdef QMAC_REQUANT
        t->requant___05Fvalid = rs.drive(t->requant___05Fpayload, rng, gap);
#endif
        t->y___05Fready = rng.next() < ready;
        c.settle();
        bool moved = false;
        if (ws.valid && t->w___05Fready) ws.valid = false, ws.sent++, moved = true;
        if (as.valid && t->a___05Fready) as.valid = false, as.sent++, moved = true;
#ifdef QMAC_REQUANT
        if (rs.valid && t->requant___05Fready) rs.valid = false, rs.sent++, moved = true;
#endif
        if (t->y___05Fvalid && t->y___05Fready) get(t->y___05Fpayload, y + got++ * ys), moved = true;
        c.edge();
        cycles++;
        idle = moved ? 0 : idle + 1;
        if (idle >= idle_limit) return 1;
    }
    // Every row is out; y.ready keeps its value (no row is left to take).
    t->w___05Fvalid = t->a___05Fvalid = 0;
#ifdef QMAC_REQUANT
    t->requant___05Fvalid = 0;
#endif
    for (c.settle(); t->status___05Fbusy; c.settle()) {
        c.edge();
        cycles++;
        if (++idle >= idle_limit) return 1;
    }
    status[0] = t->status___05Fcycles;
    status[1] = t->status___05Fmacs;
    status[2] = t->status___05Foverflow;
    status[3] = t->status___05Ferror;
    status[4] = cycles;
    t->final();
    return 0;
}

}  // namespace

extern "C" {

// Words per payload of the w, a, y and requant (0 without the output stage) ports, for the caller to check.
void qmac_payload_words(uint32_t* out) {
    out[0] = words_of<decltype(Vqmac_core::w___05Fpayload)>();
    out[1] = words_of<decltype(Vqmac_core::a___05Fpayload)>();
    out[2] = words_of<decltype(Vqmac_core::y___05Fpayload)>();
#ifdef QMAC_REQUANT
    out[3] = words_of<decltype(Vqmac_core::requant___05Fpayload)>();
#else
    out[3] = 0;
#endif
}

// Reset, clear, set the mode, stream ``beats`` w and a words (and ``requant_count`` requant words) and
// collect ``rows`` result words into ``y``; then wait until the core is idle. ``gap`` is the probability of
// an idle cycle before each input beat, ``ready`` the probability that y.ready is high in a cycle.
// ``status`` receives cycles, macs, overflow, error (the core's counters) and the simulated clock cycles from
// the first beat until the core is idle. Returns 0, or 1 when nothing moved for ``idle_limit`` cycles (the
// core hung).
int qmac_run(const uint32_t* w, const uint32_t* a, uint64_t beats, const uint32_t* requant,
             uint64_t requant_count, uint32_t* y, uint64_t rows, uint32_t mode, uint32_t sparse,
             uint32_t k_beats_m1, uint32_t log_shift, uint64_t seed, double gap, double ready,
             uint64_t idle_limit, uint64_t* status) {
    Core c;
    return stream(c, w, a, beats, requant, requant_count, y, rows, mode, sparse, k_beats_m1, log_shift, seed, gap,
                  ready, idle_limit, status);
}

// Reference for the benchmark: the bare loop, ``cycles`` clock cycles with random operand words on every
// cycle and valid/ready held high, no handshake bookkeeping; returns the result rows seen.
uint64_t qmac_bare_loop(uint64_t cycles, uint32_t mode, uint32_t k_beats_m1, uint64_t seed) {
    Core c;
    Vqmac_core* t = c.top.get();
    t->rst = 1;
    c.cycle();
    t->rst = 0;
    t->ctrl___05Fmode = mode;
    t->ctrl___05Fk_beats_m1 = k_beats_m1;
    t->w___05Fvalid = t->a___05Fvalid = t->y___05Fready = 1;
    constexpr unsigned ww = words_of<decltype(Vqmac_core::w___05Fpayload)>();
    constexpr unsigned aw = words_of<decltype(Vqmac_core::a___05Fpayload)>();
    uint32_t buf[ww > aw ? ww : aw];
    uint64_t s = seed, rows = 0;
    for (uint64_t i = 0; i < cycles; i++) {
        for (uint32_t& v : buf) v = uint32_t((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 32);
        put(t->w___05Fpayload, buf);
        put(t->a___05Fpayload, buf);
        c.cycle();
        rows += t->y___05Fvalid;
    }
    t->final();
    return rows;
}

}  // extern "C"

#ifdef QMAC_TOGGLES
// The gate-level energy run (qmac.toolchain.gate_sim.run_core).
//
// Usage: gate_sim <job.bin> <out.bin> <coverage.dat>
//   job.bin:  uint64 beats, rows, mode, sparse, k_beats_m1, log_shift, repeat; then the w payloads, then the a
//             payloads, in the word layout above. The beats are streamed ``repeat`` times back to back.
//   out.bin:  uint64 cycles of the window; then rows * repeat result payloads, same word layout.
// Exit 2 on bad arguments, 3 on an unreadable job or unwritable output, 4 when the core hung.
int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s job.bin out.bin coverage.dat\n", argv[0]);
        return 2;
    }
    constexpr unsigned ww = words_of<decltype(Vqmac_core::w___05Fpayload)>();
    constexpr unsigned aw = words_of<decltype(Vqmac_core::a___05Fpayload)>();
    constexpr unsigned yw = words_of<decltype(Vqmac_core::y___05Fpayload)>();
    std::FILE* job = std::fopen(argv[1], "rb");
    uint64_t head[7];
    if (!job || std::fread(head, sizeof head, 1, job) != 1) return 3;
    const uint64_t beats = head[0], repeat = head[6], rows = head[1] * repeat;
    std::vector<uint32_t> w(beats * repeat * ww), a(beats * repeat * aw), y(rows * yw);
    if (std::fread(w.data(), 4, beats * ww, job) != beats * ww
        || std::fread(a.data(), 4, beats * aw, job) != beats * aw)
        return 3;
    std::fclose(job);
    for (uint64_t r = 1; r < repeat; r++) {
        std::memcpy(&w[r * beats * ww], w.data(), 4 * beats * ww);
        std::memcpy(&a[r * beats * aw], a.data(), 4 * beats * aw);
    }
    Core c;
    uint64_t status[5];
    if (stream(c, w.data(), a.data(), beats * repeat, nullptr, 0, y.data(), rows, uint32_t(head[2]),
               uint32_t(head[3]), uint32_t(head[4]), uint32_t(head[5]), 0, 0.0, 1.0, 100000, status))
        return 4;
    c.ctx.coveragep()->write(argv[3]);
    std::FILE* out = std::fopen(argv[2], "wb");
    if (!out) return 3;
    std::fwrite(&status[4], sizeof status[4], 1, out);
    std::fwrite(y.data(), 4, y.size(), out);
    std::fclose(out);
    return 0;
}
#endif
