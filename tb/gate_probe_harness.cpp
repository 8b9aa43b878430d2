// Driver for the gate-level netlist of a combinational probe (qmac.energy's calibration operators): module
// ``probe`` with inputs ``a`` and ``b`` of at most 32 bits. Applies ``steps`` uniformly random operand pairs
// (splitmix64, seeded) and writes Verilator's toggle counts of every net.
//
// Usage: gate_probe <steps> <seed> <coverage.dat>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "Vprobe.h"
#include "verilated.h"
#include "verilated_cov.h"

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s steps seed coverage.dat\n", argv[0]);
        return 2;
    }
    const uint64_t steps = std::strtoull(argv[1], nullptr, 10);
    uint64_t s = std::strtoull(argv[2], nullptr, 10);
    auto next = [&] {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    };
    VerilatedContext ctx;
    std::unique_ptr<Vprobe> t{new Vprobe{&ctx}};
    t->a = 0, t->b = 0;
    t->eval();
    ctx.coveragep()->zero();
    for (uint64_t i = 0; i < steps; i++) {
        const uint64_t r = next();
        t->a = uint32_t(r), t->b = uint32_t(r >> 32);  // the port keeps its low bits
        t->eval();
    }
    t->final();
    ctx.coveragep()->write(argv[3]);
    return 0;
}
