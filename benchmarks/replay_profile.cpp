// Where the prioritized replay step's time goes, in C++ (no Python): the pieces of
// `sample(256)` + `update_priorities(256)` on a full 1M-row buffer of the replay table's rows
// (obs 17 float32, action 6 float32, reward float32, next_obs 17 float32, done bool), and a floor
// for the gather: the same random rows copied by a plain loop with the best prefetch distance.
//
//     g++ -O3 -std=c++17 -march=x86-64 -Icsrc -o /tmp/replay_profile benchmarks/replay_profile.cpp
//     /tmp/replay_profile                        # 1,000,000 rows
//     HRLKIT_SCALAR_TREE=1 /tmp/replay_profile   # the one-draw-at-a-time descent, for comparison
//
// Each figure is the median of 9 rounds of 2,000 calls (microseconds per call). "cold" draws come
// from a pool of 4M random indices (32 MB), so the rows are not in the caches from the last call.
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "core/replay.hpp"

using namespace hrlkit;

namespace {

template <class F>
double median_us(F f, int rounds = 9, int calls = 2000) {
    std::vector<double> t;
    for (int r = 0; r < rounds; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < calls; ++i) f();
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls * 1e6);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    const int64_t N = argc > 1 ? std::atoll(argv[1]) : 1000000, B = 256, C = 1024;
    const std::vector<Field> fields = {{"obs", {17}, DType::float32}, {"action", {6}, DType::float32},
                                       {"reward", {}, DType::float32}, {"next_obs", {17}, DType::float32},
                                       {"done", {}, DType::bool_}};
    ReplayOptions po;
    po.prioritized = true;
    po.prefault = true;
    Replay per(N, fields, po);
    ReplayOptions uo;
    uo.prefault = true;
    Replay uni(N, fields, uo);

    std::mt19937_64 g(0);
    std::normal_distribution<float> nd;
    std::vector<float> obs(C * 17), act(C * 6), rew(C), nobs(C * 17);
    std::vector<uint8_t> done(C);
    for (auto* v : {&obs, &act, &rew, &nobs})
        for (float& x : *v) x = nd(g);
    const void* src[5] = {obs.data(), act.data(), rew.data(), nobs.data(), done.data()};
    for (int64_t i = 0; i < N; i += C) {
        per.add(std::min(C, N - i), src);
        uni.add(std::min(C, N - i), src);
    }

    std::vector<float> bo(B * 17), ba(B * 6), br(B), bn(B * 17), w(B);
    std::vector<uint8_t> bd(B);
    std::vector<int64_t> idx(B);
    void* out[5] = {bo.data(), ba.data(), br.data(), bn.data(), bd.data()};
    std::vector<double> td(B);
    const auto new_td = [&] {
        for (double& x : td) x = std::fabs(static_cast<double>(nd(g)));
    };
    for (int i = 0; i < 3000; ++i) {  // priorities spread out as in training
        per.sample(B, -1, 0.4, idx.data(), w.data(), out);
        new_td();
        per.update_priorities(idx.data(), td.data(), B);
    }

    const double step = median_us([&] {
        per.sample(B, -1, 0.4, idx.data(), w.data(), out);
        per.update_priorities(idx.data(), td.data(), B);
    });
    const double sample = median_us([&] { per.sample(B, -1, 0.4, idx.data(), w.data(), out); });
    const double update = median_us([&] { per.update_priorities(idx.data(), td.data(), B); });
    const double uniform = median_us([&] { uni.sample(B, -1, 0.0, idx.data(), nullptr, out); });

    std::vector<int64_t> pool(size_t{1} << 22);
    for (int64_t& x : pool) x = static_cast<int64_t>(g() % static_cast<uint64_t>(N));
    size_t at = 0;
    const auto next = [&] {
        const int64_t* p = pool.data() + at;
        at = (at + B) & (pool.size() - 1);
        return p;
    };
    const double gather = median_us([&] { per.storage().gather(next(), B, out); });

    // The descent alone, on a tree of N leaves of random priority (what the PER buffer's tree holds).
    PriorityTree tree(N, 0);
    std::uniform_real_distribution<float> ud(0.1f, 2.0f);
    for (int64_t i = 0; i < N; ++i) tree.leaves()[i] = ud(g);
    tree.rebuild();
    std::vector<double> u(B);
    const double total = tree.total(0);
    const double descent = median_us([&] {
        for (int64_t j = 0; j < B; ++j) u[j] = (static_cast<double>(j) + static_cast<double>(g() >> 11) * 0x1.0p-53) * total / B;
        tree.find_batch(0, u.data(), B, idx.data());
    });

    // Floor of the gather: the same rows (168-byte strides, 2 MB-aligned huge-page memory) copied whole by a
    // plain loop, every line of the row `ahead` rows later prefetched; the best distance of a few.
    const size_t S = static_cast<size_t>(per.storage().stride(0)), span = static_cast<size_t>(N) * S + (size_t{4} << 20);
    void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return 1;
    uint8_t* rows = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + (size_t{2} << 20) - 1) & ~((size_t{2} << 20) - 1));
    madvise(rows, static_cast<size_t>(N) * S, MADV_HUGEPAGE);
    std::memset(rows, 1, static_cast<size_t>(N) * S);
    std::vector<uint8_t> copy(static_cast<size_t>(B) * S);
    double floor_us = 1e30;
    int best_ahead = 0;
    for (int ahead : {4, 8, 16}) {
        const double t = median_us([&] {
            const int64_t* ix = next();
            for (int64_t j = 0; j < B; ++j) {
                if (j + ahead < B) {
                    const uint8_t* r = rows + ix[j + ahead] * S;
                    for (size_t off = 0; off < S; off += 64) prefetch(r + off);
                    prefetch(r + S - 1);
                }
                std::memcpy(copy.data() + j * S, rows + ix[j] * S, S);
            }
        });
        if (t < floor_us) floor_us = t, best_ahead = ahead;
    }
    munmap(raw, span);

    std::printf("rows %lld, batch %lld, row stride %zu bytes%s\n", static_cast<long long>(N), static_cast<long long>(B), S,
                std::getenv("HRLKIT_SCALAR_TREE") ? ", HRLKIT_SCALAR_TREE set" : "");
    std::printf("PER sample + update      %6.1f us\n", step);
    std::printf("  sample (descent, weights, gather) %6.1f us\n", sample);
    std::printf("  update_priorities      %6.1f us\n", update);
    std::printf("  descent alone          %6.1f us\n", descent);
    std::printf("  gather alone (cold)    %6.1f us\n", gather);
    std::printf("uniform sample           %6.1f us\n", uniform);
    std::printf("gather floor (plain copy of the same rows, prefetch %d ahead) %6.1f us\n", best_ahead, floor_us);
    return 0;
}
