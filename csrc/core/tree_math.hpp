// The arithmetic of one 16-ary priority-tree node, shared by the CPU tree (sum_tree.hpp) and the
// CUDA tree (csrc/cuda): the same sums in the same order and the same descent, so both backends
// pick the same leaf for the same prefix value.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "hd.hpp"

namespace hrlkit {

constexpr int kTreeFan = 16;

// Sum and min of 16 children (children of weight 0 carry min = +inf), as 4 interleaved chains.
HRLKIT_HD inline void tree_combine(const double* w, const float* m, double* sum, float* mn) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    float m0 = HUGE_VALF, m1 = HUGE_VALF, m2 = HUGE_VALF, m3 = HUGE_VALF;
    for (int c = 0; c < kTreeFan; c += 4) {
        s0 += w[c]; s1 += w[c + 1]; s2 += w[c + 2]; s3 += w[c + 3];
        m0 = fminf(m0, m[c]); m1 = fminf(m1, m[c + 1]); m2 = fminf(m2, m[c + 2]); m3 = fminf(m3, m[c + 3]);
    }
    *sum = (s0 + s1) + (s2 + s3);
    *mn = fminf(fminf(m0, m1), fminf(m2, m3));
}

// Index of the first child whose running prefix exceeds u; u becomes the offset inside it.
// Branch-free, and the 16 prefixes are formed as 4 groups of 4 (four short add chains side by
// side, then one across the groups) rather than one chain of 16: a child of weight 0 never
// raises its prefix, so it is never the first to exceed u. Returns -1 for a node with no mass.
HRLKIT_HD inline int tree_scan(const double* w, double& u) {
    double in[kTreeFan];  // prefix within each group of 4
    double group_end[4];
    for (int g = 0; g < 4; ++g) {
        const double* x = w + 4 * g;
        in[4 * g] = x[0];
        in[4 * g + 1] = x[0] + x[1];
        in[4 * g + 2] = in[4 * g + 1] + x[2];
        in[4 * g + 3] = in[4 * g + 2] + x[3];
        group_end[g] = in[4 * g + 3];
    }
    double base[5];
    base[0] = 0.0;
    for (int g = 0; g < 4; ++g) base[g + 1] = base[g] + group_end[g];
    const int g = (base[1] <= u) + (base[2] <= u) + (base[3] <= u) + (base[4] <= u);
    if (g < 4) {
        const double v = u - base[g];
        const double* p = in + 4 * g;
        const int c = (p[0] <= v) + (p[1] <= v) + (p[2] <= v) + (p[3] <= v);
        if (c < 4) {
            u = v - (c > 0 ? p[c - 1] : 0.0);
            return 4 * g + c;
        }
    }
    // u reached the end of the node or of a group through rounding: take the last child
    // with mass before that point, u inside it.
    const int limit = g < 4 ? 4 * g + 4 : kTreeFan;
    int last = -1;
    double last_below = 0.0, acc = 0.0;
    for (int c = 0; c < limit; ++c) {
        if (w[c] > 0.0) { last = c; last_below = acc; }
        acc += w[c];
    }
    if (last >= 0) u = fmin(fmax(u - last_below, 0.0), w[last] * (1.0 - 1e-12));
    return last;
}

// p^alpha as a leaf: clamped into float's normal range so a huge TD error cannot make a sum
// infinite and a tiny positive one cannot make its row unsampleable (0 marks an empty slot).
HRLKIT_HD inline float leaf_priority(double p, double alpha) {
    const double v = pow(p, alpha);
    if (!(v > 0.0)) return 0.0f;
    return static_cast<float>(fmin(fmax(v, static_cast<double>(FLT_MIN)), static_cast<double>(FLT_MAX)));
}

}  // namespace hrlkit
