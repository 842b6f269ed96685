// SMDP / n-step returns and option-critic bootstrap targets over raw [T, N] / [B, K] arrays.
// Free functions over pointers and sizes, so a CUDA twin can mirror each one.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace hrlkit {

// For every (t, env) of a [T, N] rollout (row-major, time first):
//   k      = steps summed: up to n, stopping after the first step that ends the episode
//            (terminated or truncated), that ends the running option (option_ends, optional),
//            or at the end of the rollout;
//   G      = sum_{i<k} gamma^i r_{t+i};
//   disc   = gamma^k, or 0 when the window ended on a terminal step (no bootstrap);
//   ret    = G + disc * next_values[t+k-1] when next_values (value of s_{i+1} for each step i) is
//            given, else G.
// Flags are bytes (0/1); option_ends and next_values may be null.
template <class F>
void nstep_returns(const F* rewards, const uint8_t* terminated, const uint8_t* truncated,
                   const uint8_t* option_ends, const F* next_values, int64_t T, int64_t N, double gamma,
                   int64_t n, F* ret, F* disc_out, int64_t* steps_out) {
    if (n <= 0) throw std::invalid_argument("n: expected an integer >= 1, got " + std::to_string(n));
    for (int64_t t = 0; t < T; ++t) {
        const int64_t horizon = std::min(n, T - t);
        for (int64_t e = 0; e < N; ++e) {
            double g = 0.0, disc = 1.0;
            int64_t k = 0;
            while (k < horizon) {
                const int64_t i = (t + k) * N + e;
                g += disc * static_cast<double>(rewards[i]);
                disc *= gamma;
                ++k;
                if (terminated[i]) { disc = 0.0; break; }
                if ((truncated && truncated[i]) || (option_ends && option_ends[i])) break;
            }
            const int64_t o = t * N + e;
            if (next_values && disc != 0.0) g += disc * static_cast<double>(next_values[(t + k - 1) * N + e]);
            ret[o] = static_cast<F>(g);
            disc_out[o] = static_cast<F>(disc);
            steps_out[o] = k;
        }
    }
}

// V_Omega(s) for an epsilon-greedy option policy: (1 - eps) max_w Q(s, w) + eps mean_w Q(s, w).
template <class F>
double option_value_row(const F* row, int64_t K, double eps) {
    double mx = -std::numeric_limits<double>::infinity(), sum = 0.0;
    for (int64_t w = 0; w < K; ++w) {
        const double v = static_cast<double>(row[w]);
        mx = std::max(mx, v);
        sum += v;
    }
    return (1.0 - eps) * mx + eps * sum / static_cast<double>(K);
}

template <class F>
void option_values(const F* q, int64_t B, int64_t K, double eps, F* out) {
    for (int64_t b = 0; b < B; ++b) out[b] = static_cast<F>(option_value_row(q + b * K, K, eps));
}

// U(s', w) = (1 - beta) Q(s', w) + beta V_Omega(s') for the option w that was running.
// beta: [B] (already that option's) or [B, K] (beta_per_option; column w is used).
template <class F>
void option_bootstrap(const F* q_next, const F* beta, bool beta_per_option, const int64_t* options,
                      int64_t B, int64_t K, double eps, F* out) {
    for (int64_t b = 0; b < B; ++b)
        if (options[b] < 0 || options[b] >= K)
            throw std::out_of_range("options: expected ids in [0, " + std::to_string(K) + "), got " +
                                    std::to_string(options[b]) + " at position " + std::to_string(b));
    for (int64_t b = 0; b < B; ++b) {
        const F* row = q_next + b * K;
        const int64_t w = options[b];
        const double be = static_cast<double>(beta_per_option ? beta[b * K + w] : beta[b]);
        out[b] = static_cast<F>((1.0 - be) * static_cast<double>(row[w]) + be * option_value_row(row, K, eps));
    }
}

}  // namespace hrlkit
