// CUDA twins of the core's kernels: the priority tree (stratified sampling, batched priority
// updates, refresh after adds), the all-columns gather, and the targets of returns.hpp. The math
// of a tree node and of each target row is the core's own HRLKIT_HD code (tree_math.hpp,
// returns.hpp), so the CPU and GPU results agree to the rounding of the device's pow/exp/log.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "../core/checked.hpp"
#include "../core/returns.hpp"
#include "../core/tree_math.hpp"
#include "kernels.h"

namespace hrlkit {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTreeThreads = 1024;  // tree updates and fills run in one block (levels separated by barriers)

cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// A grid wider than CUDA allows (2^31 - 1 blocks) is refused: the cast would otherwise launch a
// truncated grid that silently leaves items undone.
unsigned blocks_for(int64_t n) {
    const int64_t blocks = ceil_div(n, kThreads);
    if (blocks > 0x7fffffff)
        throw std::length_error("CUDA launch: " + std::to_string(n) + " items need more than 2^31 - 1 blocks");
    return static_cast<unsigned>(blocks);
}

void check_launch(const char* what) {
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": CUDA launch failed: " + cudaGetErrorString(e));
}

// ---- priority tree ------------------------------------------------------------------------------

// Recompute the sum and min of `slot` at `node` of internal level l from its 16 children.
__device__ void refresh_node(const TreeView& t, int l, int64_t node, int slot) {
    double w[kTreeFan];
    float m[kTreeFan];
    const int64_t first = node * kTreeFan;
    if (l == 0) {
        const bool all = slot == t.slots - 1;
        for (int c = 0; c < kTreeFan; ++c) {
            const float p = t.leaves[first + c];
            const bool in = p > 0.0f && (all || t.tags[first + c] == slot);
            w[c] = in ? static_cast<double>(p) : 0.0;
            m[c] = in ? p : HUGE_VALF;
        }
    } else {
        const int64_t base = t.offsets[l - 1] + slot * t.strides[l - 1] + first;
        for (int c = 0; c < kTreeFan; ++c) {
            w[c] = t.sums[base + c];
            m[c] = t.mins[base + c];
        }
    }
    const int64_t at = t.offsets[l] + slot * t.strides[l] + node;
    tree_combine(w, m, &t.sums[at], &t.mins[at]);
}

// Columns of a gather: device pointers and bytes per row.
struct Columns {
    const uint8_t* src[kMaxColumns];
    uint8_t* dst[kMaxColumns];
    int64_t row_bytes[kMaxColumns];
    int count;
};

constexpr int64_t kInlineRowBytes = 256;  // rows up to this size are copied by the sampling thread

// Row src_row of every column into row j of the outputs, by one thread (small rows).
__device__ void copy_row(const Columns& cols, int64_t src_row, int64_t j) {
    for (int c = 0; c < cols.count; ++c) {
        const int64_t rb = cols.row_bytes[c];
        if (rb % 4 == 0) {
            const uint32_t* s = reinterpret_cast<const uint32_t*>(cols.src[c] + src_row * rb);
            uint32_t* d = reinterpret_cast<uint32_t*>(cols.dst[c] + j * rb);
            for (int64_t w = 0; w < rb / 4; ++w) d[w] = s[w];
        } else {
            for (int64_t b = 0; b < rb; ++b) cols.dst[c][j * rb + b] = cols.src[c][src_row * rb + b];
        }
    }
}

// One draw per thread: a stratified descent of the tree (levels > 0), or a uniform row of the
// `size` written (levels == 0); then the importance weight and, for small rows, the row itself.
__global__ void sample_kernel(TreeView t, int slot, int64_t n, int64_t size, const double* rand, const double* beta,
                              int64_t* idx, float* weights, Columns cols, bool copy_rows) {
    const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (j >= n) return;
    int64_t node = 0;
    if (t.levels == 0) {
        node = static_cast<int64_t>(rand[j] * static_cast<double>(size));
        node = node < size ? node : size - 1;
    } else {
        const int top = t.levels - 1;
        const int64_t root = t.offsets[top] + slot * t.strides[top];
        double u = (static_cast<double>(j) + rand[j]) * (t.sums[root] / static_cast<double>(n));
        const bool all = slot == t.slots - 1;
        for (int l = top; l >= 0; --l) {
            double w[kTreeFan];
            const int64_t first = node * kTreeFan;
            if (l == 0) {
                for (int c = 0; c < kTreeFan; ++c)
                    w[c] = (all || t.tags[first + c] == slot) ? static_cast<double>(t.leaves[first + c]) : 0.0;
            } else {
                const double* s = t.sums + t.offsets[l - 1] + slot * t.strides[l - 1] + first;
                for (int c = 0; c < kTreeFan; ++c) w[c] = s[c];
            }
            const int c = tree_scan(w, u);
            node = first + (c < 0 ? 0 : c);  // c < 0 only for an empty tree (total 0)
        }
        if (weights) weights[j] = powf(t.mins[root] / t.leaves[node], static_cast<float>(*beta));
    }
    idx[j] = node;
    if (copy_rows) copy_row(cols, node, j);
}

__device__ double block_max(double v) {
    __shared__ double part[kTreeThreads / 32];
    for (int off = 16; off > 0; off /= 2) v = fmax(v, __shfl_down_sync(0xffffffffu, v, off));
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) part[warp] = v;
    __syncthreads();
    double m = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < static_cast<int>((blockDim.x + 31) / 32); ++w) m = fmax(m, part[w]);
    return m;  // valid in thread 0
}

__global__ void __launch_bounds__(kTreeThreads) tree_update_kernel(TreeView t, const int64_t* idx, const void* td, bool td_f64, int64_t n,
                                   double alpha, double eps, double* max_priority, int32_t* owner) {
    const int64_t tid = threadIdx.x, step = blockDim.x;
    // the last occurrence of a duplicated index wins, as in a sequential loop over the batch
    for (int64_t j = tid; j < n; j += step) owner[idx[j]] = -1;
    __syncthreads();
    for (int64_t j = tid; j < n; j += step) atomicMax(&owner[idx[j]], static_cast<int32_t>(j));
    __syncthreads();
    double mx = 0.0;
    for (int64_t j = tid; j < n; j += step) {
        const double d = td_f64 ? static_cast<const double*>(td)[j] : static_cast<double>(static_cast<const float*>(td)[j]);
        const double p = fabs(d) + eps;
        mx = fmax(mx, p);
        if (owner[idx[j]] == j) t.leaves[idx[j]] = leaf_priority(p, alpha);
    }
    mx = block_max(mx);
    if (tid == 0) *max_priority = fmax(*max_priority, mx);
    __syncthreads();
    // every (index, slot) pair is its own work item: one memory round trip per level for n * slots <= 1024
    for (int l = 0; l < t.levels; ++l) {
        const int shift = 4 * (l + 1);
        for (int64_t k = tid; k < n * t.slots; k += step)
            refresh_node(t, l, idx[k / t.slots] >> shift, static_cast<int>(k % t.slots));
        __syncthreads();
    }
}

__global__ void __launch_bounds__(kTreeThreads) tree_fill_kernel(TreeView t, int64_t lo, int64_t count, int64_t capacity, int mode,
                                 const double* max_priority, double alpha) {
    const int64_t tid = threadIdx.x, step = blockDim.x;
    if (mode != 0) {
        const float v = mode == 1 ? leaf_priority(*max_priority, alpha) : 1.0f;
        for (int64_t k = tid; k < count; k += step) t.leaves[(lo + k) % capacity] = v;
    }
    __syncthreads();
    const int64_t a[2] = {lo, 0};
    const int64_t b[2] = {lo + count < capacity ? lo + count : capacity, lo + count > capacity ? lo + count - capacity : 0};
    for (int l = 0; l < t.levels; ++l) {
        const int shift = 4 * (l + 1);
        for (int seg = 0; seg < 2; ++seg) {
            if (b[seg] <= a[seg]) continue;
            const int64_t first = a[seg] >> shift, items = (((b[seg] - 1) >> shift) - first + 1) * t.slots;
            for (int64_t k = tid; k < items; k += step)
                refresh_node(t, l, first + k / t.slots, static_cast<int>(k % t.slots));
        }
        __syncthreads();
    }
}

// ---- gather -------------------------------------------------------------------------------------

__global__ void gather_kernel(Columns cols, const int64_t* idx, int64_t n) {
    const int c = blockIdx.y;
    const int64_t rb = cols.row_bytes[c];
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    const int64_t start = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (rb % 4 == 0) {  // torch allocations are 256-byte aligned: whole rows move as 4-byte words
        const int64_t words = rb / 4;
        const uint32_t* src = reinterpret_cast<const uint32_t*>(cols.src[c]);
        uint32_t* dst = reinterpret_cast<uint32_t*>(cols.dst[c]);
        for (int64_t w = start; w < n * words; w += stride) dst[w] = src[idx[w / words] * words + w % words];
    } else {
        for (int64_t w = start; w < n * rb; w += stride) cols.dst[c][w] = cols.src[c][idx[w / rb] * rb + w % rb];
    }
}

// ---- targets --------------------------------------------------------------------------------------

template <class F>
__global__ void nstep_kernel(const F* r, const uint8_t* term, const uint8_t* trunc, const uint8_t* oe, const F* nv,
                             int64_t T, int64_t N, double gamma, double lam, int64_t n, F* ret, F* disc, int64_t* steps) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < T * N) nstep_one(r, term, trunc, oe, nv, T, N, gamma, lam, n, i / N, i % N, ret, disc, steps);
}

template <class F>
__global__ void option_values_kernel(const F* q, int64_t B, int64_t K, double eps, F* out) {
    const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (b < B) out[b] = static_cast<F>(option_value_row(q + b * K, K, eps));
}

template <class F>
__global__ void option_bootstrap_kernel(const F* q, const F* beta, bool per_option, const int64_t* options, int64_t B,
                                        int64_t K, double eps, F* out) {
    const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (b >= B) return;
    out[b] = (options[b] < 0 || options[b] >= K) ? static_cast<F>(NAN)
                                                 : option_bootstrap_one(q, beta, per_option, options, K, eps, b);
}

template <class F>
__global__ void soft_option_kernel(const F* q_next, const F* logp, const F* q_omega, const F* beta,
                                   const int64_t* options, const F* rewards, const F* discounts, const F* alpha,
                                   int64_t B, int64_t K, double tau, bool soft, double xi, F* q_option, F* value,
                                   F* target, F* advantage) {
    const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (b >= B) return;
    if (options[b] < 0 || options[b] >= K) {
        q_option[b] = value[b] = target[b] = advantage[b] = static_cast<F>(NAN);
        return;
    }
    soft_option_one(q_next, logp, q_omega, beta, options, rewards, discounts, alpha, B, K, tau, soft, xi, b, q_option,
                    value, target, advantage);
}

template <class F>
__global__ void skill_kernel(const F* logits, const int64_t* skills, int64_t B, int64_t Z, double log_z, F* reward,
                             uint8_t* correct) {
    const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (b >= B) return;
    if (skills[b] < 0 || skills[b] >= Z) {
        reward[b] = static_cast<F>(NAN);
        correct[b] = 0;
        return;
    }
    skill_reward_one(logits, skills, Z, log_z, b, reward, correct);
}

template <class F>
__global__ void feudal_kernel(const F* states, const F* goals, const uint8_t* starts, int64_t L, int64_t N, int64_t D,
                              int64_t c, double eps, F* intrinsic, F* direction, int64_t* horizon) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < (L - c) * N) feudal_one(states, goals, starts, L, N, D, c, eps, i / N, i % N, intrinsic, direction, horizon);
}

template <class F>
const F* cp(const void* p) { return static_cast<const F*>(p); }
template <class F>
F* mp(void* p) { return static_cast<F*>(p); }

}  // namespace

static Columns make_columns(int ncols, const void* const* src, void* const* dst, const int64_t* row_bytes, int64_t* most_units,
                     int64_t* widest_row) {
    if (ncols > kMaxColumns) throw std::invalid_argument("gather: at most 32 columns");
    Columns cols{};
    cols.count = ncols;
    *most_units = *widest_row = 0;
    for (int c = 0; c < ncols; ++c) {
        cols.src[c] = static_cast<const uint8_t*>(src[c]);
        cols.dst[c] = static_cast<uint8_t*>(dst[c]);
        cols.row_bytes[c] = row_bytes[c];
        const int64_t units = row_bytes[c] % 4 == 0 ? row_bytes[c] / 4 : row_bytes[c];
        *most_units = units > *most_units ? units : *most_units;
        *widest_row = row_bytes[c] > *widest_row ? row_bytes[c] : *widest_row;
    }
    return cols;
}

static void launch_gather(const Columns& cols, int64_t most_units, const int64_t* idx, int64_t n, cudaStream_t stream) {
    const int64_t want = ceil_div(most_units * n, kThreads);  // a grid-stride loop: 1024 blocks cover any n
    const unsigned gx = want < 1024 ? static_cast<unsigned>(want) : 1024u;
    gather_kernel<<<dim3(gx, static_cast<unsigned>(cols.count)), kThreads, 0, stream>>>(cols, idx, n);
    check_launch("gather");
}

void sample(const TreeView* t, int slot, int64_t n, int64_t size, const double* rand, const double* beta, int64_t* idx,
            float* weights, int ncols, const void* const* src, void* const* dst, const int64_t* row_bytes,
            uintptr_t stream) {
    if (n <= 0) return;
    int64_t most = 0, widest = 0;
    const Columns cols = make_columns(ncols, src, dst, row_bytes, &most, &widest);
    TreeView none{};
    const bool inline_rows = widest <= kInlineRowBytes;
    sample_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(t ? *t : none, slot, n, size, rand, beta, idx,
                                                                     weights, cols, inline_rows);
    check_launch("sample");
    if (!inline_rows && ncols > 0) launch_gather(cols, most, idx, n, as_stream(stream));
}

void tree_update(const TreeView& t, const int64_t* idx, const void* td, bool td_f64, int64_t n, double alpha,
                 double eps, double* max_priority, int32_t* owner, uintptr_t stream) {
    if (n <= 0) return;
    if (n > 0x7fffffff)  // duplicates are resolved through int32 positions in `owner`
        throw std::length_error("indices: expected at most 2^31 - 1 per update, got " + std::to_string(n));
    const int threads = n >= kTreeThreads ? kTreeThreads : static_cast<int>((n + 31) / 32 * 32);
    tree_update_kernel<<<1, threads, 0, as_stream(stream)>>>(t, idx, td, td_f64, n, alpha, eps, max_priority, owner);
    check_launch("tree_update");
}

void tree_fill(const TreeView& t, int64_t lo, int64_t count, int64_t capacity, int mode, const double* max_priority,
               double alpha, uintptr_t stream) {
    if (count <= 0) return;
    tree_fill_kernel<<<1, kTreeThreads, 0, as_stream(stream)>>>(t, lo, count, capacity, mode, max_priority, alpha);
    check_launch("tree_fill");
}

void gather(int ncols, const void* const* src, void* const* dst, const int64_t* row_bytes, const int64_t* idx,
            int64_t n, uintptr_t stream) {
    if (n <= 0 || ncols <= 0) return;
    int64_t most = 0, widest = 0;
    const Columns cols = make_columns(ncols, src, dst, row_bytes, &most, &widest);
    launch_gather(cols, most, idx, n, as_stream(stream));
}

#define HRLKIT_DISPATCH(f64, F, ...) \
    do {                             \
        if (f64) {                   \
            using F = double;        \
            __VA_ARGS__;             \
        } else {                     \
            using F = float;         \
            __VA_ARGS__;             \
        }                            \
    } while (0)

void nstep_returns(bool f64, const void* rewards, const uint8_t* terminated, const uint8_t* truncated,
                   const uint8_t* option_ends, const void* next_values, int64_t T, int64_t N, double gamma, double lam,
                   int64_t n, void* ret, void* disc, int64_t* steps, uintptr_t stream) {
    if (T * N <= 0) return;
    HRLKIT_DISPATCH(f64, F, (nstep_kernel<F><<<blocks_for(T * N), kThreads, 0, as_stream(stream)>>>(
                                cp<F>(rewards), terminated, truncated, option_ends, cp<F>(next_values), T, N, gamma, lam, n,
                                mp<F>(ret), mp<F>(disc), steps)));
    check_launch("nstep_returns");
}

void option_values(bool f64, const void* q, int64_t B, int64_t K, double eps, void* out, uintptr_t stream) {
    if (B <= 0) return;
    HRLKIT_DISPATCH(f64, F, (option_values_kernel<F><<<blocks_for(B), kThreads, 0, as_stream(stream)>>>(
                                cp<F>(q), B, K, eps, mp<F>(out))));
    check_launch("option_values");
}

void option_bootstrap(bool f64, const void* q_next, const void* beta, bool beta_per_option, const int64_t* options,
                      int64_t B, int64_t K, double eps, void* out, uintptr_t stream) {
    if (B <= 0) return;
    HRLKIT_DISPATCH(f64, F, (option_bootstrap_kernel<F><<<blocks_for(B), kThreads, 0, as_stream(stream)>>>(
                                cp<F>(q_next), cp<F>(beta), beta_per_option, options, B, K, eps, mp<F>(out))));
    check_launch("option_bootstrap");
}

void soft_option_targets(bool f64, const void* q_next, const void* logp, const void* q_omega, const void* beta,
                         const int64_t* options, const void* rewards, const void* discounts, const void* alpha,
                         int64_t B, int64_t K, double tau, bool soft, double xi, void* q_option, void* value,
                         void* target, void* advantage, uintptr_t stream) {
    if (B <= 0) return;
    HRLKIT_DISPATCH(f64, F, (soft_option_kernel<F><<<blocks_for(B), kThreads, 0, as_stream(stream)>>>(
                                cp<F>(q_next), cp<F>(logp), cp<F>(q_omega), cp<F>(beta), options, cp<F>(rewards),
                                cp<F>(discounts), cp<F>(alpha), B, K, tau, soft, xi, mp<F>(q_option), mp<F>(value),
                                mp<F>(target), mp<F>(advantage))));
    check_launch("soft_option_targets");
}

void skill_rewards(bool f64, const void* logits, const int64_t* skills, int64_t B, int64_t Z, void* reward,
                   uint8_t* correct, uintptr_t stream) {
    if (B <= 0) return;
    const double log_z = std::log(static_cast<double>(Z));
    HRLKIT_DISPATCH(f64, F, (skill_kernel<F><<<blocks_for(B), kThreads, 0, as_stream(stream)>>>(
                                cp<F>(logits), skills, B, Z, log_z, mp<F>(reward), correct)));
    check_launch("skill_rewards");
}

void feudal_terms(bool f64, const void* states, const void* goals, const uint8_t* starts, int64_t L, int64_t N,
                  int64_t D, int64_t c, double eps, void* intrinsic, void* direction, int64_t* horizon,
                  uintptr_t stream) {
    if ((L - c) * N <= 0) return;
    HRLKIT_DISPATCH(f64, F, (feudal_kernel<F><<<blocks_for((L - c) * N), kThreads, 0, as_stream(stream)>>>(
                                cp<F>(states), cp<F>(goals), starts, L, N, D, c, eps, mp<F>(intrinsic),
                                mp<F>(direction), horizon)));
    check_launch("feudal_terms");
}

}  // namespace cuda
}  // namespace hrlkit
