// A 16-ary sum/min tree over per-slot priorities, with optional per-option ("tagged") sums.
//
// Why 16-ary: a 1M-leaf binary tree has 20 levels and two 8-byte nodes per leaf (16 MB of sums
// alone, 10% of a 1M x 165-byte replay). With fan-out 16 the tree has 5 internal levels, one
// node's children are 16 contiguous values (two cache lines of doubles), internal nodes cost
// 1/15 of a leaf each, and the leaves (one float per slot) dominate the overhead.
//
// Tags: with num_options = K > 0 every level keeps K + 1 sums and mins per node (one per option
// and one over all rows), stored slot-major so that a descent for option k reads 16 contiguous
// values per level. Leaf tags are read from the replay's own `option` column (no copy); that
// column and the leaves are padded to a multiple of 16 rows (pad rows: priority 0).
//
// Exactness: a node is always recomputed from its children, never patched with a delta, so its
// sum is > 0 exactly when some child's is. The descent picks the first child whose running
// prefix exceeds u, which is never a child of weight 0 (adding 0.0 leaves the prefix unchanged),
// and falls back to the last child of positive weight when rounding pushes u past the end: it
// can never end on an empty or foreign leaf.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HRLKIT_TREE_AVX2 1  // find_batch's four-lane descent, chosen at run time where the CPU has AVX2
#else
#define HRLKIT_TREE_AVX2 0
#endif

#include "checked.hpp"
#include "memory.hpp"
#include "tree_math.hpp"

namespace hrlkit {

class PriorityTree {
public:
    static constexpr int64_t kFan = kTreeFan;  // tree_math.hpp: the fan-out the CUDA tree shares

    PriorityTree(int64_t capacity, int64_t num_options)
        : capacity_(check(capacity, num_options)), num_options_(num_options), slots_(num_options + 1),
          leaves_(static_cast<size_t>(round_up(capacity, kFan).value()) * sizeof(float)) {
        int64_t n = capacity;
        do {
            n = ceil_div(n, kFan);
            const int64_t stride = round_up(n, kFan).value();
            strides_.push_back(stride);
            sums_.emplace_back(static_cast<size_t>(stride * slots_), 0.0);
            mins_.emplace_back(static_cast<size_t>(stride * slots_), kInf);
        } while (n > 1);
    }

    // The arguments' checks, before anything is allocated (the replay checks them first, with
    // messages in its own terms; these guard the tree's own arithmetic).
    static int64_t check(int64_t capacity, int64_t num_options) {
        if (capacity <= 0) throw std::invalid_argument("capacity: expected > 0");
        if (num_options < 0 || !footprint(capacity, num_options).ok())
            throw std::invalid_argument("capacity: a tree over " + std::to_string(capacity) + " rows and " +
                                        std::to_string(num_options) + " options does not fit in 64-bit sizes");
        return capacity;
    }

    // Bytes of a tree over `capacity` leaves with `num_options` tags: the leaves (padded to a
    // multiple of 16) and a double sum and a float min per node and slot of every internal level.
    // Overflowed when they do not fit in int64.
    static CheckedSize footprint(int64_t capacity, int64_t num_options) {
        const CheckedSize slots = CheckedSize(num_options) + 1;  // one per option, one over all rows
        CheckedSize b = round_up(capacity, kFan) * static_cast<int64_t>(sizeof(float));
        int64_t n = capacity;
        do {
            n = ceil_div(n, kFan);
            b = b + round_up(n, kFan) * slots * static_cast<int64_t>(sizeof(double) + sizeof(float));
        } while (n > 1);
        return b;
    }

    // Where each leaf's option tag lives (the replay's int64 `option` column, padded to a
    // multiple of 16 rows); only for K > 0.
    void set_tags(const int64_t* tags) { tags_ = tags; }

    void prefault() { leaves_.populate_all(); }  // the internal levels are vectors, written at construction
    int64_t all_slot() const { return slots_ - 1; }
    float leaf(int64_t i) const { return leaves_.as<float>()[i]; }
    float* leaves() { return leaves_.as<float>(); }
    size_t bytes() const {
        size_t b = leaves_.bytes();
        for (size_t l = 0; l < sums_.size(); ++l) b += sums_[l].size() * (sizeof(double) + sizeof(float));
        return b;
    }

    double total(int64_t slot) const { return sums_.back()[static_cast<size_t>(slot * strides_.back())]; }
    float min(int64_t slot) const { return mins_.back()[static_cast<size_t>(slot * strides_.back())]; }

    // Set leaf i to p (its tag already written) and refresh its ancestors; old_tag is the tag the
    // leaf had before (or -1), so the sums of the option it left are refreshed too.
    void set(int64_t i, float p, int64_t old_tag) {
        leaves()[i] = p;
        const int64_t all = all_slot();
        int64_t node = i / kFan;
        if (num_options_ == 0) {
            for (size_t l = 0; l < sums_.size(); ++l, node /= kFan) refresh(l, node, 0);
            return;
        }
        const int64_t tag = tags_[i];
        for (size_t l = 0; l < sums_.size(); ++l, node /= kFan) {
            refresh(l, node, all);
            refresh(l, node, tag);
            if (old_tag >= 0 && old_tag != tag) refresh(l, node, old_tag);
        }
    }

    // Change the priority of a stored row (tag unchanged). Between two positive priorities the
    // sums take the difference and the mins are recomputed only where the old value was the
    // minimum; a change to or from 0 goes through set(), which recomputes every ancestor, so a
    // sum is still 0 exactly when its subtree is empty. The few ulps the differences leave are
    // cleared by a full rebuild every `capacity` updates.
    void update(int64_t i, float p) {
        const float old = leaves()[i];
        if (!(old > 0.0f && p > 0.0f)) {
            set(i, p, -1);
            return;
        }
        leaves()[i] = p;
        const double delta = static_cast<double>(p) - static_cast<double>(old);
        const int64_t tag = num_options_ > 0 ? tags_[i] : -1;
        const int64_t all = all_slot();
        int64_t node = i / kFan;
        for (size_t l = 0; l < sums_.size(); ++l, node /= kFan) {
            adjust(l, node, all, delta, old, p);
            if (tag >= 0) adjust(l, node, tag, delta, old, p);
        }
        if (++updates_since_rebuild_ >= capacity_) {
            rebuild();
            updates_since_rebuild_ = 0;
        }
    }

    // Bring in what update(i) reads first (the leaf, and the sum and min of its parent in every
    // slot the update touches), so a batch of updates has its cache misses in flight together
    // rather than one at a time.
    void prefetch_update(int64_t i) const {
        prefetch(leaves_.as<float>() + i);
        const size_t node = static_cast<size_t>(i / kFan);
        const int64_t tag = num_options_ > 0 ? tags_[i] : -1;
        for (int64_t slot : {all_slot(), tag}) {
            if (slot < 0) continue;
            prefetch(sums_[0].data() + slot * strides_[0] + node);
            prefetch(mins_[0].data() + slot * strides_[0] + node);
        }
    }

    // Leaves [lo, hi) were written directly (with any tags): refresh every slot above them.
    void refresh_range(int64_t lo, int64_t hi) {
        if (hi <= lo) return;
        int64_t a = lo / kFan, b = (hi - 1) / kFan;
        for (size_t l = 0; l < sums_.size(); ++l, a /= kFan, b /= kFan)
            for (int64_t node = a; node <= b; ++node)
                for (int64_t slot = 0; slot < slots_; ++slot) refresh(l, node, slot);
    }

    void rebuild() { refresh_range(0, capacity_); }

    // Leaf indices for prefix values u[j] in [0, total(slot)), level by level over the batch so
    // the cache misses of different draws overlap (each draw prefetches its next children).
    // Each result is a leaf of positive priority in the slot, provided total(slot) > 0.
    //
    // Each step is tree_scan's arithmetic: the same additions in the same order, so the same leaf
    // as tree_scan (and the CUDA tree) to the last bit. Where the CPU has AVX2, four draws go down
    // a level together, one per vector lane (scan4); otherwise, and for the leaves of a tagged
    // slot and a batch's last n % 4 draws, one at a time (scan_rest).
    void find_batch(int64_t slot, double* u, int64_t n, int64_t* out) const {
        std::fill(out, out + n, int64_t{0});
        for (size_t l = sums_.size(); l-- > 0;) {
            int64_t j = 0;
#if HRLKIT_TREE_AVX2
            if (has_avx2() && !(l == 0 && slot != slots_ - 1)) {
                for (; j + 4 <= n; j += 4) {
                    double u0[4];
                    int64_t node0[4];
                    std::copy(u + j, u + j + 4, u0);
                    std::copy(out + j, out + j + 4, node0);
                    int bad;
                    if (l == 0) {
                        const float* f[4];
                        for (int k = 0; k < 4; ++k) f[k] = leaves_.as<float>() + node0[k] * kFan;
                        bad = scan4_leaves(f, u + j, out + j);
                    } else {
                        const double* w[4];
                        for (int k = 0; k < 4; ++k) w[k] = sums_[l - 1].data() + slot * strides_[l - 1] + node0[k] * kFan;
                        bad = scan4_sums(w, u + j, out + j);
                    }
                    for (; bad; bad &= bad - 1) {
                        const int k = __builtin_ctz(static_cast<unsigned>(bad));  // rounding: tree_scan itself
                        double w[kFan];
                        load_children(l, node0[k], slot, w);
                        u[j + k] = u0[k];
                        out[j + k] = node0[k] * kFan + scan(w, u[j + k]);
                    }
                    if (l > 0)
                        for (int k = 0; k < 4; ++k) prefetch_children(l - 1, out[j + k], slot);
                }
            }
#endif
            scan_rest(l, slot, u, j, n, out);
        }
    }

private:
    static constexpr float kInf = std::numeric_limits<float>::infinity();

    // Draws [j0, n) one level down, one at a time. A node's 16 prefixes are formed once and reused
    // by consecutive draws in the same node (stratified draws share the top levels).
    void scan_rest(size_t l, int64_t slot, double* u, int64_t j0, int64_t n, int64_t* out) const {
        NodeScan s;
        int64_t prepared = -1;
        for (int64_t j = j0; j < n; ++j) {
            const int64_t node = out[j];
            if (node != prepared) {
                double w[kFan];
                load_children(l, node, slot, w);
                prefixes(w, s);
                prepared = node;
            }
            const int64_t child = node * kFan + locate(s, l, node, slot, u[j]);
            out[j] = child;
            if (l > 0) prefetch_children(l - 1, child, slot);
        }
    }

#if HRLKIT_TREE_AVX2
    // HRLKIT_SCALAR_TREE=1 in the environment keeps the one-draw-at-a-time descent (the tests
    // compare the two paths).
    static bool has_avx2() {
        static const bool yes = __builtin_cpu_supports("avx2") && !std::getenv("HRLKIT_SCALAR_TREE");
        return yes;
    }

    // scan4 for children that are leaves (floats, widened exactly) or sums (doubles): the four
    // groups of 4 children of each lane's node.
    __attribute__((target("avx2"))) static int scan4_leaves(const float* const* f, double* u, int64_t* out) {
        __m256d g[4][4];
        for (int k = 0; k < 4; ++k)
            for (int q = 0; q < 4; ++q) g[k][q] = _mm256_cvtps_pd(_mm_loadu_ps(f[k] + 4 * q));
        return scan4(g, u, out);
    }
    __attribute__((target("avx2"))) static int scan4_sums(const double* const* w, double* u, int64_t* out) {
        __m256d g[4][4];
        for (int k = 0; k < 4; ++k)
            for (int q = 0; q < 4; ++q) g[k][q] = _mm256_loadu_pd(w[k] + 4 * q);
        return scan4(g, u, out);
    }

    // How many of three lane masks (all ones where set) are set, per lane.
    __attribute__((target("avx2"), always_inline)) static inline __m256i set_count(__m256d a, __m256d b, __m256d c) {
        const __m256i sum = _mm256_add_epi64(_mm256_add_epi64(_mm256_castpd_si256(a), _mm256_castpd_si256(b)), _mm256_castpd_si256(c));
        return _mm256_sub_epi64(_mm256_setzero_si256(), sum);
    }

    // tree_scan for four draws at once, lane k for the node out[k] with children g[k][group]:
    // the in-group prefixes and the group bases by the same additions in the same order, the
    // group and the child by the same comparisons (the prefixes never decrease, so the masks are
    // monotone and blends pick base[g] and the group's prefixes). out[k] becomes the child, u[k]
    // the offset inside it. Returns the lanes whose u reached the end of the node or of a group
    // through rounding (tree_scan's fallback): their out and u are to be redone by tree_scan.
    __attribute__((target("avx2"))) static int scan4(const __m256d (&g)[4][4], double* u, int64_t* out) {
        __m256d in[4][4];  // [child in group][group], lane = draw
        for (int q = 0; q < 4; ++q) {
            const __m256d t0 = _mm256_unpacklo_pd(g[0][q], g[1][q]), t1 = _mm256_unpackhi_pd(g[0][q], g[1][q]);
            const __m256d t2 = _mm256_unpacklo_pd(g[2][q], g[3][q]), t3 = _mm256_unpackhi_pd(g[2][q], g[3][q]);
            const __m256d x1 = _mm256_permute2f128_pd(t1, t3, 0x20), x2 = _mm256_permute2f128_pd(t0, t2, 0x31),
                          x3 = _mm256_permute2f128_pd(t1, t3, 0x31);
            in[0][q] = _mm256_permute2f128_pd(t0, t2, 0x20);
            in[1][q] = _mm256_add_pd(in[0][q], x1);
            in[2][q] = _mm256_add_pd(in[1][q], x2);
            in[3][q] = _mm256_add_pd(in[2][q], x3);
        }
        const __m256d b1 = in[3][0], b2 = _mm256_add_pd(b1, in[3][1]), b3 = _mm256_add_pd(b2, in[3][2]),
                      b4 = _mm256_add_pd(b3, in[3][3]);
        const __m256d uu = _mm256_loadu_pd(u);
        const __m256d m1 = _mm256_cmp_pd(b1, uu, _CMP_LE_OQ), m2 = _mm256_cmp_pd(b2, uu, _CMP_LE_OQ),
                      m3 = _mm256_cmp_pd(b3, uu, _CMP_LE_OQ), m4 = _mm256_cmp_pd(b4, uu, _CMP_LE_OQ);
        const __m256d base = _mm256_blendv_pd(_mm256_blendv_pd(_mm256_and_pd(b1, m1), b2, m2), b3, m3);
        const __m256d v = _mm256_sub_pd(uu, base);
        __m256d p[4];
        for (int c = 0; c < 4; ++c)
            p[c] = _mm256_blendv_pd(_mm256_blendv_pd(_mm256_blendv_pd(in[c][0], in[c][1], m1), in[c][2], m2), in[c][3], m3);
        const __m256d n0 = _mm256_cmp_pd(p[0], v, _CMP_LE_OQ), n1 = _mm256_cmp_pd(p[1], v, _CMP_LE_OQ),
                      n2 = _mm256_cmp_pd(p[2], v, _CMP_LE_OQ), n3 = _mm256_cmp_pd(p[3], v, _CMP_LE_OQ);
        const __m256d below = _mm256_blendv_pd(_mm256_blendv_pd(_mm256_and_pd(p[0], n0), p[1], n1), p[2], n2);
        _mm256_storeu_pd(u, _mm256_sub_pd(v, below));
        const __m256i child = _mm256_add_epi64(_mm256_slli_epi64(set_count(m1, m2, m3), 2), set_count(n0, n1, n2));
        __m256i* o = reinterpret_cast<__m256i*>(out);
        _mm256_storeu_si256(o, _mm256_add_epi64(_mm256_slli_epi64(_mm256_loadu_si256(o), 4), child));
        return _mm256_movemask_pd(_mm256_or_pd(m4, n3));
    }
#endif

    // tree_scan's prefixes of one node: in[4g + k] within group g, base[g] before group g.
    struct NodeScan {
        double in[kFan];
        double base[5];
    };

    // tree_scan's first half.
    static void prefixes(const double* w, NodeScan& s) {
        double group_end[4];
        for (int g = 0; g < 4; ++g) {
            const double* x = w + 4 * g;
            s.in[4 * g] = x[0];
            s.in[4 * g + 1] = x[0] + x[1];
            s.in[4 * g + 2] = s.in[4 * g + 1] + x[2];
            s.in[4 * g + 3] = s.in[4 * g + 2] + x[3];
            group_end[g] = s.in[4 * g + 3];
        }
        s.base[0] = 0.0;
        for (int g = 0; g < 4; ++g) s.base[g + 1] = s.base[g] + group_end[g];
    }

    // tree_scan's second half: the child for u (u becomes the offset inside it); the rare
    // rounding cases go to tree_scan itself over the same children, which forms the same
    // prefixes and so takes the same branch.
    int locate(const NodeScan& s, size_t l, int64_t node, int64_t slot, double& u) const {
        const int g = (s.base[1] <= u) + (s.base[2] <= u) + (s.base[3] <= u) + (s.base[4] <= u);
        if (g < 4) {
            const double v = u - s.base[g];
            const double* p = s.in + 4 * g;
            const int c = (p[0] <= v) + (p[1] <= v) + (p[2] <= v) + (p[3] <= v);
            if (c < 4) {
                u = v - (c > 0 ? p[c - 1] : 0.0);
                return 4 * g + c;
            }
        }
        double w[kFan];
        load_children(l, node, slot, w);
        return scan(w, u);
    }

    // Weights of the 16 children of `node` at level l (children of level 0 are leaves).
    void load_children(size_t l, int64_t node, int64_t slot, double* w) const {
        const int64_t first = node * kFan;
        if (l == 0) {
            const float* p = leaves_.as<float>() + first;
            if (slot == slots_ - 1) {
                for (int c = 0; c < kFan; ++c) w[c] = p[c];
            } else {
                const int64_t* t = tags_ + first;
                for (int c = 0; c < kFan; ++c) w[c] = t[c] == slot ? static_cast<double>(p[c]) : 0.0;
            }
            return;
        }
        const double* s = sums_[l - 1].data() + slot * strides_[l - 1] + first;
        for (int c = 0; c < kFan; ++c) w[c] = s[c];
    }

    static int scan(const double* w, double& u) {
        const int c = tree_scan(w, u);
        if (c < 0) throw std::logic_error("PriorityTree: descended into an empty node");
        return c;
    }

    void prefetch_children(size_t l, int64_t node, int64_t slot) const {
        const int64_t first = node * kFan;
        if (l == 0) {
            prefetch(leaves_.as<float>() + first);
            if (num_options_ > 0 && slot != slots_ - 1) {
                prefetch(tags_ + first);
                prefetch(tags_ + first + 8);
            }
        } else {
            const double* s = sums_[l - 1].data() + slot * strides_[l - 1] + first;
            prefetch(s);
            prefetch(s + 8);
        }
    }

    // One ancestor of a leaf whose priority moved from old_leaf to new_leaf (both > 0).
    void adjust(size_t l, int64_t node, int64_t slot, double delta, float old_leaf, float new_leaf) {
        const size_t at = static_cast<size_t>(slot * strides_[l] + node);
        double& s = sums_[l][at];
        s += delta;
        if (s <= std::fabs(delta) * 1e-9) {  // cancellation ate the sum's precision: recompute
            refresh(l, node, slot);
            return;
        }
        float& m = mins_[l][at];
        if (new_leaf <= m) m = new_leaf;
        else if (old_leaf == m) min_refresh(l, node, slot);
    }

    void min_refresh(size_t l, int64_t node, int64_t slot) {
        const int64_t first = node * kFan;
        float lo = kInf;
        if (l == 0) {
            const float* p = leaves_.as<float>() + first;
            const bool all = slot == slots_ - 1;
            for (int c = 0; c < kFan; ++c)
                if (p[c] > 0.0f && (all || tags_[first + c] == slot)) lo = std::min(lo, p[c]);
        } else {
            const float* mn = mins_[l - 1].data() + slot * strides_[l - 1] + first;
            for (int c = 0; c < kFan; ++c) lo = std::min(lo, mn[c]);
        }
        mins_[l][static_cast<size_t>(slot * strides_[l] + node)] = lo;
    }

    // Recompute the sum and min of `slot` at `node` of level l from its 16 children.
    void refresh(size_t l, int64_t node, int64_t slot) {
        double w[kFan];
        float m[kFan];
        const int64_t first = node * kFan;
        if (l == 0) {
            const float* p = leaves_.as<float>() + first;
            if (slot == slots_ - 1) {
                for (int c = 0; c < kFan; ++c) {
                    w[c] = static_cast<double>(p[c]);
                    m[c] = p[c] > 0.0f ? p[c] : kInf;
                }
            } else {
                const int64_t* t = tags_ + first;
                for (int c = 0; c < kFan; ++c) {
                    const bool in = t[c] == slot && p[c] > 0.0f;
                    w[c] = in ? static_cast<double>(p[c]) : 0.0;
                    m[c] = in ? p[c] : kInf;
                }
            }
        } else {
            const double* s = sums_[l - 1].data() + slot * strides_[l - 1] + first;
            const float* mn = mins_[l - 1].data() + slot * strides_[l - 1] + first;
            for (int c = 0; c < kFan; ++c) { w[c] = s[c]; m[c] = mn[c]; }
        }
        const size_t at = static_cast<size_t>(slot * strides_[l] + node);
        tree_combine(w, m, &sums_[l][at], &mins_[l][at]);
    }

    int64_t capacity_, num_options_, slots_;
    const int64_t* tags_ = nullptr;
    ZeroedBuffer leaves_;                     // float per slot, padded to a multiple of 16
    std::vector<int64_t> strides_;            // entries per slot at each internal level (padded)
    std::vector<std::vector<double>> sums_;   // [level][slot * stride + node], bottom up
    std::vector<std::vector<float>> mins_;
    int64_t updates_since_rebuild_ = 0;
};

}  // namespace hrlkit
