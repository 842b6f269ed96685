// A 16-ary sum/min tree over per-slot priorities, with optional per-option ("tagged") sums.
//
// Why 16-ary: a 1M-leaf binary tree has 20 levels and two 8-byte nodes per leaf (16 MB of sums
// alone, 10% of a 1M x 165-byte replay). With fan-out 16 the tree has 5 levels, one level's
// children fit in two cache lines, and the internal nodes cost 1/15 of a leaf each, so the
// leaves (one float per slot) dominate the overhead.
//
// Tags: with num_options = K > 0 every internal node keeps K + 1 sums and mins (one per option
// plus one over all rows), so a row of option k is found by descending on the k-th sums. Leaf
// tags are read from the replay's own `option` column (no copy).
//
// Exactness: a node is always recomputed from its children, never patched with a delta, so a
// node's sum is > 0 exactly when some child's is; the descent can then never end on an empty
// or foreign leaf, whatever the float rounding of the prefix value.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace hrlkit {

class PriorityTree {
public:
    static constexpr int64_t kFan = 16;

    PriorityTree(int64_t capacity, int64_t num_options)
        : capacity_(capacity), num_options_(num_options), slots_(num_options > 0 ? num_options + 1 : 1),
          leaves_(static_cast<size_t>(capacity), 0.0f) {
        if (capacity <= 0) throw std::invalid_argument("capacity: expected > 0, got " + std::to_string(capacity));
        int64_t n = capacity;
        do {
            n = (n + kFan - 1) / kFan;
            counts_.push_back(n);
            sums_.emplace_back(static_cast<size_t>(n * slots_), 0.0);
            mins_.emplace_back(static_cast<size_t>(n * slots_), kInf);
        } while (n > 1);
    }

    // Where each leaf's option tag lives (the replay's int64 `option` column); only for K > 0.
    void set_tags(const int64_t* tags) { tags_ = tags; }

    int64_t capacity() const { return capacity_; }
    int64_t all_slot() const { return slots_ - 1; }
    float leaf(int64_t i) const { return leaves_[static_cast<size_t>(i)]; }
    float* leaves() { return leaves_.data(); }
    const float* leaves() const { return leaves_.data(); }
    size_t bytes() const {
        size_t b = leaves_.size() * sizeof(float);
        for (size_t l = 0; l < sums_.size(); ++l) b += sums_[l].size() * (sizeof(double) + sizeof(float));
        return b;
    }

    double total(int64_t slot) const { return sums_.back()[static_cast<size_t>(slot)]; }
    float min(int64_t slot) const { return mins_.back()[static_cast<size_t>(slot)]; }

    // Set leaf i to p (its tag already written) and refresh its ancestors; old_tag is the tag the
    // leaf had before (or -1), so the sums of the option it left are refreshed too.
    void set(int64_t i, float p, int64_t old_tag) {
        leaves_[static_cast<size_t>(i)] = p;
        const int64_t all = all_slot();
        int64_t node = i / kFan;
        if (num_options_ == 0) {
            for (size_t l = 0; l < sums_.size(); ++l, node /= kFan) refresh_slot(l, node, 0);
            return;
        }
        const int64_t tag = tags_[i];
        for (size_t l = 0; l < sums_.size(); ++l, node /= kFan) {
            refresh_slot(l, node, all);
            refresh_slot(l, node, tag);
            if (old_tag >= 0 && old_tag != tag) refresh_slot(l, node, old_tag);
        }
    }

    // Leaves [lo, hi) were written directly (with any tags): refresh every slot above them.
    void refresh_range(int64_t lo, int64_t hi) {
        if (hi <= lo) return;
        int64_t a = lo / kFan, b = (hi - 1) / kFan;
        for (size_t l = 0; l < sums_.size(); ++l, a /= kFan, b /= kFan)
            for (int64_t node = a; node <= b; ++node) refresh_node(l, node);
    }

    void rebuild() { refresh_range(0, capacity_); }

    // Leaf index for prefix value u in [0, total(slot)). Always a leaf of positive priority that
    // belongs to the slot, provided total(slot) > 0.
    int64_t find(int64_t slot, double u) const {
        int64_t node = 0;
        for (size_t l = sums_.size(); l-- > 0;) node = pick_child(l, node, slot, u);
        return node;
    }

    // find() for a batch, level by level, prefetching each sample's next children so the cache
    // misses of different samples overlap.
    void find_batch(int64_t slot, double* u, int64_t n, int64_t* out) const {
        std::fill(out, out + n, int64_t{0});
        for (size_t l = sums_.size(); l-- > 0;) {
            for (int64_t j = 0; j < n; ++j) {
                out[j] = pick_child(l, out[j], slot, u[j]);
                prefetch_children(l, out[j]);
            }
        }
    }

private:
    static constexpr float kInf = std::numeric_limits<float>::infinity();

    bool in_slot(int64_t leaf, int64_t slot) const {
        return slot == slots_ - 1 || tags_[leaf] == slot;
    }

    // Weight of child c of a level-l node for `slot` (children of level 0 are leaves).
    double child_weight(size_t l, int64_t c, int64_t slot) const {
        if (l == 0) {
            const float p = leaves_[static_cast<size_t>(c)];
            return (p > 0.0f && in_slot(c, slot)) ? static_cast<double>(p) : 0.0;
        }
        return sums_[l - 1][static_cast<size_t>(c * slots_ + slot)];
    }

    int64_t child_count(size_t l) const { return l == 0 ? capacity_ : counts_[l - 1]; }

    int64_t pick_child(size_t l, int64_t node, int64_t slot, double& u) const {
        const int64_t first = node * kFan, last = std::min(first + kFan, child_count(l));
        double acc = 0.0, last_acc = 0.0, last_w = 0.0;
        int64_t last_positive = -1;
        for (int64_t c = first; c < last; ++c) {
            const double w = child_weight(l, c, slot);
            if (w <= 0.0) continue;
            if (u < acc + w) { u -= acc; return c; }
            last_positive = c; last_acc = acc; last_w = w;
            acc += w;
        }
        // u fell past the end through rounding: stay on the last child with mass.
        if (last_positive < 0) throw std::logic_error("PriorityTree: descended into an empty node");
        u = std::min(std::max(u - last_acc, 0.0), last_w * (1.0 - 1e-12));
        return last_positive;
    }

    void prefetch_children(size_t l, int64_t node) const {
        if (l == 0) return;
        if (l == 1) {
            const float* p = leaves_.data() + node * kFan;
            __builtin_prefetch(p);
            __builtin_prefetch(p + kFan - 1);
            if (num_options_ > 0) { __builtin_prefetch(tags_ + node * kFan); __builtin_prefetch(tags_ + node * kFan + kFan - 1); }
        } else {
            const double* s = sums_[l - 2].data() + node * kFan * slots_;
            __builtin_prefetch(s);
            __builtin_prefetch(s + kFan * slots_ - 1);
        }
    }

    void refresh_slot(size_t l, int64_t node, int64_t slot) {
        const int64_t first = node * kFan, last = std::min(first + kFan, child_count(l));
        double s = 0.0;
        float m = kInf;
        if (l == 0) {
            for (int64_t c = first; c < last; ++c) {
                const float p = leaves_[static_cast<size_t>(c)];
                if (p > 0.0f && in_slot(c, slot)) { s += p; m = std::min(m, p); }
            }
        } else {
            const double* cs = sums_[l - 1].data();
            const float* cm = mins_[l - 1].data();
            for (int64_t c = first; c < last; ++c) {
                s += cs[c * slots_ + slot];
                m = std::min(m, cm[c * slots_ + slot]);
            }
        }
        sums_[l][static_cast<size_t>(node * slots_ + slot)] = s;
        mins_[l][static_cast<size_t>(node * slots_ + slot)] = m;
    }

    void refresh_node(size_t l, int64_t node) {
        if (l == 0 && num_options_ > 0) {
            // One pass over the leaves fills every option's slot and the all-rows slot.
            double* s = sums_[0].data() + node * slots_;
            float* m = mins_[0].data() + node * slots_;
            std::fill(s, s + slots_, 0.0);
            std::fill(m, m + slots_, kInf);
            const int64_t first = node * kFan, last = std::min(first + kFan, capacity_);
            const int64_t all = all_slot();
            for (int64_t c = first; c < last; ++c) {
                const float p = leaves_[static_cast<size_t>(c)];
                if (p <= 0.0f) continue;
                const int64_t t = tags_[c];
                s[t] += p; m[t] = std::min(m[t], p);
                s[all] += p; m[all] = std::min(m[all], p);
            }
            return;
        }
        for (int64_t slot = 0; slot < slots_; ++slot) refresh_slot(l, node, slot);
    }

    int64_t capacity_, num_options_, slots_;
    const int64_t* tags_ = nullptr;
    std::vector<float> leaves_;
    std::vector<int64_t> counts_;             // nodes per internal level, bottom up
    std::vector<std::vector<double>> sums_;   // [level][node * slots + slot]
    std::vector<std::vector<float>> mins_;
};

}  // namespace hrlkit
