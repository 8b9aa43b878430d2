// Driver for the gate-level netlist of the core (qmac.tb.gate_sim), Verilated with --coverage-toggle: streams
// a GEMM's operand beats ``repeat`` times with valid and ready held high, collects the result rows, and writes
// Verilator's toggle counts of every net for the cycles from the first beat until the core is idle again.
//
// Usage: gate_energy <job.bin> <out.bin> <coverage.dat>
//   job.bin:  uint64 beats, rows, mode, sparse, k_beats_m1, log_shift, repeat; then the w payloads, then the a
//             payloads, each as ceil(width / 32) little-endian uint32 words (the storage Verilator gives a port).
//   out.bin:  uint64 window cycles; then rows * repeat result payloads, same word layout.
// Inputs change while the clock is low and a transfer happens at the rising edge when valid and ready are both
// high (the protocol of qmac.tb.core_tb.CoreTB). Port names are Verilator's: "__" becomes "___05F".
//
// The fast RTL engine (branch fast-engine, tb/verilator_harness.cpp) drives the emitted RTL with the same
// protocol through ctypes; the two drivers should become one once both are merged.

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "Vqmac_core.h"
#include "verilated.h"
#include "verilated_cov.h"

namespace {

template <typename T>
constexpr unsigned words_of() {
    if constexpr (std::is_integral_v<T>) return sizeof(T) > 4 ? 2 : 1;
    else return sizeof(T) / 4;
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

}  // namespace

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
    const uint64_t beats = head[0], rows = head[1] * head[6], repeat = head[6];
    std::vector<uint32_t> w(beats * ww), a(beats * aw), y(rows * yw);
    if (std::fread(w.data(), 4, w.size(), job) != w.size() || std::fread(a.data(), 4, a.size(), job) != a.size())
        return 3;
    std::fclose(job);

    VerilatedContext ctx;
    std::unique_ptr<Vqmac_core> t{new Vqmac_core{&ctx}};
    auto settle = [&] { t->clk = 0; t->eval(); };
    auto edge = [&] { t->clk = 1; t->eval(); };
    t->rst = 1;
    settle(), edge(), settle(), edge();
    t->rst = 0;
    t->ctrl___05Fclear = 1;
    settle(), edge();
    t->ctrl___05Fclear = 0;
    t->ctrl___05Fmode = head[2];
    t->ctrl___05Fsparse = head[3];
    t->ctrl___05Fk_beats_m1 = head[4];
#ifdef QMAC_LOG_SHIFT
    t->ctrl___05Flog_shift = head[5];
#endif
    t->y___05Fready = 1;
    settle(), edge();
    ctx.coveragep()->zero();  // the window starts here

    uint64_t sent_w = 0, sent_a = 0, got = 0, cycles = 0, idle = 0;
    const uint64_t total = beats * repeat;
    while (got < rows) {
        t->w___05Fvalid = sent_w < total;
        t->a___05Fvalid = sent_a < total;
        if (sent_w < total) put(t->w___05Fpayload, &w[(sent_w % beats) * ww]);
        if (sent_a < total) put(t->a___05Fpayload, &a[(sent_a % beats) * aw]);
        settle();
        bool moved = false;
        if (t->w___05Fvalid && t->w___05Fready) sent_w++, moved = true;
        if (t->a___05Fvalid && t->a___05Fready) sent_a++, moved = true;
        if (t->y___05Fvalid) get(t->y___05Fpayload, &y[got++ * yw]), moved = true;
        edge();
        cycles++;
        idle = moved ? 0 : idle + 1;
        if (idle > 100000) return 4;
    }
    t->w___05Fvalid = t->a___05Fvalid = 0;
    for (settle(); t->status___05Fbusy; settle()) {
        edge();
        cycles++;
        if (++idle > 100000) return 4;
    }
    t->final();
    ctx.coveragep()->write(argv[3]);
    std::FILE* out = std::fopen(argv[2], "wb");
    if (!out) return 3;
    std::fwrite(&cycles, sizeof cycles, 1, out);
    std::fwrite(y.data(), 4, y.size(), out);
    std::fclose(out);
    return 0;
}
