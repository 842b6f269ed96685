// Host-side entry points of the CUDA kernels. Plain C++ (no CUDA or Python headers), so the
// pybind11 layer compiles with the host compiler. Every pointer is a device address, every
// `stream` a cudaStream_t (torch's current stream); launches are asynchronous and throw
// std::runtime_error only for launch errors. `f64` selects double over float arrays.
#pragma once
#include <cstdint>

namespace hrlkit {
namespace cuda {

constexpr int kMaxLevels = 16;
constexpr int kMaxColumns = 32;

// A 16-ary sum/min tree in device memory, the CPU tree's layout: leaves[round_up(capacity, 16)];
// internal level l (bottom up) at sums/mins + offsets[l], slot-major with `strides[l]` entries
// per slot; slots = num_options + 1 with tags (option column, padded), else 1.
struct TreeView {
    float* leaves;
    const int64_t* tags;
    double* sums;
    float* mins;
    int64_t offsets[kMaxLevels];
    int64_t strides[kMaxLevels];
    int levels;
    int slots;
};

// n draws, one launch: with a tree, draw j is the stratified u_j = (j + rand[j]) * total(slot) / n
// descended to a leaf of positive priority in `slot`, weights (optional) = (p_min / p_i)^*beta
// (beta in device memory, so a captured CUDA graph sees its current value);
// without (t null), a uniform row of the `size` written. The drawn rows of every column are
// copied into dst by the drawing threads (rows of <= 256 bytes), else by a second, wide launch.
void sample(const TreeView* t, int slot, int64_t n, int64_t size, const double* rand, const double* beta, int64_t* idx,
            float* weights, int ncols, const void* const* src, void* const* dst, const int64_t* row_bytes,
            uintptr_t stream);

// p_j = |td_j| + eps, leaf idx_j = clamp(p_j^alpha) (the last of duplicate indices wins),
// *max_priority = max(*max_priority, max_j p_j), and every ancestor refreshed. owner: int32 scratch
// of `capacity` entries (duplicate resolution).
void tree_update(const TreeView& t, const int64_t* idx, const void* td, bool td_f64, int64_t n, double alpha,
                 double eps, double* max_priority, int32_t* owner, uintptr_t stream);

// Rows [lo, lo + count) modulo capacity were written: set their leaves (mode 1: priority of
// *max_priority; mode 2: 1; mode 0: keep) and refresh every slot above them.
void tree_fill(const TreeView& t, int64_t lo, int64_t count, int64_t capacity, int mode, const double* max_priority,
               double alpha, uintptr_t stream);

// out[c][j] = columns[c][idx[j]] for every column, row_bytes[c] bytes per row; one launch.
void gather(int ncols, const void* const* src, void* const* dst, const int64_t* row_bytes, const int64_t* idx,
            int64_t n, uintptr_t stream);

// The core's targets (csrc/core/returns.hpp), one thread per output row. Out-of-range option or
// skill ids give NaN rows (the Python layer validates ids before the call unless told not to).
void nstep_returns(bool f64, const void* rewards, const uint8_t* terminated, const uint8_t* truncated,
                   const uint8_t* option_ends, const void* next_values, int64_t T, int64_t N, double gamma, double lam,
                   int64_t n, void* ret, void* disc, int64_t* steps, uintptr_t stream);
void option_values(bool f64, const void* q, int64_t B, int64_t K, double eps, void* out, uintptr_t stream);
void option_bootstrap(bool f64, const void* q_next, const void* beta, bool beta_per_option, const int64_t* options,
                      int64_t B, int64_t K, double eps, void* out, uintptr_t stream);
void soft_option_targets(bool f64, const void* q_next, const void* logp, const void* q_omega, const void* beta,
                         const int64_t* options, const void* rewards, const void* discounts, const void* alpha,
                         int64_t B, int64_t K, double tau, bool soft, double xi, void* q_option, void* value,
                         void* target, void* advantage, uintptr_t stream);
void skill_rewards(bool f64, const void* logits, const int64_t* skills, int64_t B, int64_t Z, void* reward,
                   uint8_t* correct, uintptr_t stream);
void feudal_terms(bool f64, const void* states, const void* goals, const uint8_t* starts, int64_t L, int64_t N,
                  int64_t D, int64_t c, double eps, void* intrinsic, void* direction, int64_t* horizon,
                  uintptr_t stream);

}  // namespace cuda
}  // namespace hrlkit
