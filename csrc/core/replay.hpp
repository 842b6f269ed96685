// A replay buffer: row ring storage (storage.hpp), optional proportional prioritization, optional option
// tags. Uniform and prioritized, tagged or not, are one class: a prioritized buffer keeps a
// PriorityTree of (|delta| + eps)^alpha; an untagged uniform buffer keeps none; a tagged uniform
// buffer keeps a tree of unit priorities, so "a uniform row of option k" is the same descent.
//
// Every public mutating/sampling method refuses bad input before it touches state and holds the
// buffer's mutex while it works, so rows are never torn between threads. The arguments of add,
// sample, gather, update_priorities and count are the Python face's to check (hrlkit.replay, which
// also names the problem when the core refuses a call): here those checks are only the invariants
// the memory accesses rely on, and their messages are terse.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "rng.hpp"
#include "storage.hpp"
#include "sum_tree.hpp"

namespace hrlkit {

// A call whose arguments break an invariant of the core (see the comment at the top).
[[noreturn]] inline void refuse(const std::string& what) { throw std::invalid_argument("Replay refused " + what); }

struct ReplayOptions {
    int64_t num_options = 0;  // 0: untagged
    bool prioritized = false;
    double alpha = 0.6;
    double eps = 1e-6;
    uint64_t seed = 0;
    bool prefault = false;  // make every page resident in the constructor, not at the first writes
};

class Replay {
public:
    Replay(int64_t capacity, std::vector<Field> fields, const ReplayOptions& opt)
        : Replay(Plan{capacity, required_bytes(capacity, fields, opt), std::move(fields), opt}) {}

    // Checks every constructor argument and returns the bytes the buffer will hold (columns,
    // tree, per-option counts), all before anything is allocated: a capacity too large for
    // those sizes to fit in 64 bits is an error naming capacity here, rather than a wrapped size,
    // a short allocation and writes past its end later.
    static int64_t required_bytes(int64_t capacity, const std::vector<Field>& fields, const ReplayOptions& opt) {
        const std::vector<int64_t> row_bytes = RowStorage::check(capacity, fields);
        const int64_t own = option_field_of(fields, opt);
        const bool tree = opt.prioritized || opt.num_options > 0;
        const auto footprint = [&](int64_t rows) {
            const CheckedSize b = RowStorage::footprint(rows, fields, row_bytes, own) +
                                  CheckedSize(opt.num_options) * static_cast<int64_t>(sizeof(int64_t));
            return tree ? b + PriorityTree::footprint(rows, opt.num_options) : b;
        };
        const std::string tags = opt.num_options > 0 ? " and num_options=" + std::to_string(opt.num_options) : "";
        if (!footprint(1).ok()) {
            if (!RowStorage::footprint(1, fields, row_bytes, own).ok())  // rows are stored in blocks of 16
                throw std::invalid_argument("spec: expected fields whose 16 rows fit in 64-bit sizes, got rows of " +
                                            std::to_string(*std::max_element(row_bytes.begin(), row_bytes.end())) + " bytes");
            throw std::invalid_argument("num_options: expected a number of options whose per-option sums fit in 64-bit "
                                        "sizes, got " + std::to_string(opt.num_options));
        }
        const CheckedSize need = footprint(capacity);
        if (need.ok()) return need.value();
        int64_t fits = 1, too_big = capacity;  // the largest capacity that fits, for the message
        while (too_big - fits > 1) {
            const int64_t mid = fits + (too_big - fits) / 2;
            (footprint(mid).ok() ? fits : too_big) = mid;
        }
        throw std::invalid_argument("capacity: expected at most " + std::to_string(fits) + " rows for these fields" + tags +
                                    " (the buffer's size in bytes must fit in 64 bits), got " + std::to_string(capacity));
    }

    // ---- introspection -------------------------------------------------------------------
    int64_t capacity() const { return storage_.capacity(); }
    int64_t size() const { return size_; }
    int64_t pos() const { return pos_; }
    int64_t num_options() const { return opt_.num_options; }
    bool prioritized() const { return opt_.prioritized; }
    double alpha() const { return opt_.alpha; }
    double eps() const { return opt_.eps; }
    double max_priority() const { return max_priority_; }
    const RowStorage& storage() const { return storage_; }
    RowStorage& storage() { return storage_; }
    float* priorities() { return tree_ ? tree_->leaves() : nullptr; }
    size_t overhead_bytes() const { return tree_ ? tree_->bytes() : 0; }
    std::array<uint64_t, 4> rng_state() const { return rng_.state(); }
    void set_rng_state(const std::array<uint64_t, 4>& s) {
        if (s == std::array<uint64_t, 4>{})  // xoshiro never leaves the zero state: every draw would be 0
            throw std::invalid_argument("rng_state: expected four 64-bit words, not all zero, got all zero");
        rng_.set_state(s);
    }
    void reseed(uint64_t seed) { std::lock_guard<std::mutex> g(mu_); rng_.reseed(seed); }
    std::mutex& mutex() { return mu_; }

    int64_t count(int64_t option) const {
        if (option < 0) return size_;
        check_option(option);
        return counts_[static_cast<size_t>(option)];
    }

    // ---- add -----------------------------------------------------------------------------
    // src[f]: contiguous [n, row] array of field f.
    void add(int64_t n, const void* const* src) {
        if (n <= 0) refuse("add: no rows");
        if (opt_.num_options > 0) {  // the tags index the per-option counts: checked before anything is written
            const int64_t* t = static_cast<const int64_t*>(src[option_field_]);
            for (int64_t j = 0; j < n; ++j)
                if (t[j] < 0 || t[j] >= opt_.num_options) refuse("add: an option id out of range");
        }
        std::lock_guard<std::mutex> g(mu_);
        const int64_t cap = capacity(), old_size = size_;
        int64_t first = 0;
        if (n > cap) {  // only the newest `cap` rows survive, at the slots a row-by-row add gives
            first = n - cap;
            pos_ = (pos_ + first) % cap;
        }
        int64_t remaining = n - first, row = first;
        while (remaining > 0) {
            const int64_t chunk = std::min(remaining, cap - pos_);
            write_chunk(pos_, chunk, src, row, old_size);
            row += chunk;
            remaining -= chunk;
            pos_ = (pos_ + chunk) % cap;
        }
    }

    // ---- sample --------------------------------------------------------------------------
    // Draws n slot indices (with replacement) and, for a prioritized buffer, importance weights
    // w_i = (N P(i))^-beta / max_j w_j = (p_min / p_i)^beta; then gathers every field into out.
    // option < 0: all rows. weights may be null for an unprioritized buffer.
    void sample(int64_t n, int64_t option, double beta, int64_t* idx, float* weights, void* const* out) {
        if (n <= 0) refuse("sample: batch_size <= 0");
        if (option >= 0) check_option(option);
        if (opt_.prioritized && !(beta >= 0.0 && std::isfinite(beta))) refuse("sample: beta not a finite number >= 0");
        std::lock_guard<std::mutex> g(mu_);
        const int64_t available = option >= 0 ? counts_[static_cast<size_t>(option)] : size_;
        if (available == 0) refuse("sample: no rows to draw from");
        if (opt_.prioritized) {
            sample_prioritized(n, option, beta, idx, weights);
        } else if (option >= 0) {
            const double total = tree_->total(option);
            double* u = scratch(n);
            for (int64_t j = 0; j < n; ++j) u[j] = rng_.uniform() * total;
            tree_->find_batch(option, u, n, idx);
        } else {
            for (int64_t j = 0; j < n; ++j) idx[j] = static_cast<int64_t>(rng_.below(static_cast<uint64_t>(size_)));
        }
        storage_.gather(idx, n, out);
    }

    // Gather given slots (validated) into out.
    void gather(const int64_t* idx, int64_t n, void* const* out) {
        std::lock_guard<std::mutex> g(mu_);
        check_indices(idx, n);
        storage_.gather(idx, n, out);
    }

    // ---- priorities ----------------------------------------------------------------------
    void update_priorities(const int64_t* idx, const double* td, int64_t n) {
        if (!opt_.prioritized) refuse("update_priorities: the buffer is not prioritized");
        for (int64_t j = 0; j < n; ++j)
            if (!std::isfinite(td[j])) refuse("update_priorities: a TD error not finite");
        std::lock_guard<std::mutex> g(mu_);
        check_indices(idx, n);
        for (int64_t j = 0; j < n; ++j) tree_->prefetch_update(idx[j]);
        for (int64_t j = 0; j < n; ++j) {
            const double p = std::fabs(td[j]) + opt_.eps;
            max_priority_ = std::max(max_priority_, p);
            tree_->update(idx[j], leaf_value(p));
        }
    }

    // ---- restore (load) ------------------------------------------------------------------
    // The columns were filled by the caller; set the ring position, take the saved leaves and
    // rebuild the tree and the per-option counts. Not thread-safe: only on a fresh buffer.
    void restore(int64_t size, int64_t pos, double max_priority, const float* leaves) {
        const int64_t cap = capacity();
        if (size < 0 || size > cap || pos < 0 || pos >= cap || (size < cap && pos != size))
            throw std::invalid_argument("restore: inconsistent size " + std::to_string(size) + " / position " +
                                        std::to_string(pos) + " for capacity " + std::to_string(cap));
        // max_priority starts at 1 and only grows (it is a running max of |td| + eps), and only a
        // prioritized buffer moves it; a leaf is p^alpha, clamped finite, or 0 for an empty slot.
        if (opt_.prioritized ? !(max_priority >= 1.0 && std::isfinite(max_priority)) : max_priority != 1.0)
            throw std::invalid_argument("max_priority: expected " +
                                        std::string(opt_.prioritized ? "a finite number >= 1" : "1 (the buffer is not prioritized)") +
                                        ", got " + std::to_string(max_priority));
        if (leaves)
            for (int64_t i = 0; i < size; ++i)
                if (!(leaves[i] >= 0.0f && std::isfinite(leaves[i])))
                    throw std::invalid_argument("priorities: expected finite values >= 0, got " + std::to_string(leaves[i]) +
                                                " at row " + std::to_string(i));
        if (opt_.num_options > 0) {
            const int64_t* t = tags();
            std::vector<int64_t> counts(counts_.size(), 0);
            for (int64_t i = 0; i < size; ++i) {
                if (t[i] < 0 || t[i] >= opt_.num_options)
                    throw std::invalid_argument("restore: option id " + std::to_string(t[i]) + " out of range");
                ++counts[static_cast<size_t>(t[i])];
            }
            counts_ = std::move(counts);
        }
        size_ = size;
        pos_ = pos;
        max_priority_ = max_priority;
        if (tree_) {
            float* lv = tree_->leaves();
            for (int64_t i = 0; i < cap; ++i) lv[i] = i < size ? (leaves ? leaves[i] : 1.0f) : 0.0f;  // pad rows stay 0
            tree_->rebuild();
        }
    }

private:
    struct Plan {
        int64_t capacity, bytes;
        std::vector<Field> fields;
        ReplayOptions opt;
    };

    // Allocates what required_bytes() checked. A capacity that fits in 64 bits may still be more
    // than the machine can give: that std::bad_alloc says which argument asked for the memory.
    explicit Replay(Plan p) try
        : storage_(p.capacity, p.fields, option_field_of(p.fields, p.opt)), opt_(p.opt), rng_(p.opt.seed) {
        option_field_ = storage_.own_field();  // option_field_of's answer, given to the storage above
        if (opt_.num_options > 0) counts_.assign(static_cast<size_t>(opt_.num_options), 0);
        if (opt_.prioritized || opt_.num_options > 0) {
            tree_ = std::make_unique<PriorityTree>(p.capacity, opt_.num_options);
            if (opt_.num_options > 0) tree_->set_tags(tags());
        }
        if (opt_.prefault) {
            storage_.prefault();
            if (tree_) tree_->prefault();
        }
    } catch (const std::bad_alloc&) {
        const std::string tags = p.opt.num_options > 0 ? " and num_options=" + std::to_string(p.opt.num_options) : "";
        throw AllocationError("capacity: " + std::to_string(p.capacity) + " rows of these fields" + tags + " need " +
                              std::to_string(p.bytes) + " bytes (" + std::to_string(p.bytes >> 30) +
                              " GiB), more than could be allocated; expected a capacity whose rows fit in memory");
    }

    // The checks of the options (fields already checked); the index of the `option` field, or -1.
    static int64_t option_field_of(const std::vector<Field>& fields, const ReplayOptions& opt) {
        if (opt.num_options < 0)
            throw std::invalid_argument("num_options: expected an integer >= 1 or None, got " + std::to_string(opt.num_options));
        if (opt.prioritized) {
            if (!(opt.alpha >= 0.0) || !std::isfinite(opt.alpha))
                throw std::invalid_argument("alpha: expected a finite number >= 0, got " + std::to_string(opt.alpha));
            if (!(opt.eps >= 0.0) || !std::isfinite(opt.eps))
                throw std::invalid_argument("eps: expected a finite number >= 0, got " + std::to_string(opt.eps));
        }
        if (opt.num_options == 0) return -1;
        int64_t at = -1;
        for (size_t f = 0; f < fields.size(); ++f)
            if (fields[f].name == "option") at = static_cast<int64_t>(f);
        if (at < 0 || fields[static_cast<size_t>(at)].dtype != DType::int64 || !fields[static_cast<size_t>(at)].shape.empty())
            throw std::invalid_argument("spec: a buffer with num_options needs a scalar int64 field 'option'");
        return at;
    }

    const int64_t* tags() const {
        return reinterpret_cast<const int64_t*>(storage_.column(option_field_));
    }

    float leaf_value(double p) const { return leaf_priority(p, opt_.alpha); }

    void check_option(int64_t option) const {
        if (option < 0 || option >= opt_.num_options) refuse("an option id out of range");
    }

    void check_indices(const int64_t* idx, int64_t n) const {
        for (int64_t j = 0; j < n; ++j)
            if (idx[j] < 0 || idx[j] >= size_) refuse("an index outside the rows written");
    }

    // Each slot is written at most once per add, so the rows a chunk replaces are the ones that
    // held data before the add began (slots below old_size).
    void write_chunk(int64_t slot, int64_t n, const void* const* src, int64_t src_row, int64_t old_size) {
        const int64_t cap = capacity();
        const int64_t overwritten = std::max<int64_t>(0, std::min(slot + n, old_size) - slot);
        if (opt_.num_options > 0) {
            const int64_t* t = tags();
            for (int64_t i = slot; i < slot + overwritten; ++i) --counts_[static_cast<size_t>(t[i])];
        }
        storage_.write(slot, n, src, src_row);
        size_ = std::min(cap, std::max(size_, slot + n));
        if (opt_.num_options > 0) {
            const int64_t* t = tags();
            for (int64_t i = slot; i < slot + n; ++i) ++counts_[static_cast<size_t>(t[i])];
        }
        if (!tree_) return;
        const float p = opt_.prioritized ? leaf_value(max_priority_) : 1.0f;
        float* lv = tree_->leaves();
        for (int64_t i = slot; i < slot + n; ++i) lv[i] = p;
        tree_->refresh_range(slot, slot + n);
    }

    double* scratch(int64_t n) {  // mutex held by the caller
        if (static_cast<int64_t>(scratch_.size()) < n) scratch_.resize(static_cast<size_t>(n));
        return scratch_.data();
    }

    void sample_prioritized(int64_t n, int64_t option, double beta, int64_t* idx, float* weights) {
        const int64_t slot = option >= 0 ? option : tree_->all_slot();
        const double total = tree_->total(slot);
        if (!(total > 0.0))
            throw std::invalid_argument("sample: every priority is zero (td_errors of 0 with eps=0); use eps > 0");
        const double seg = total / static_cast<double>(n);
        double* u = scratch(n);
        for (int64_t j = 0; j < n; ++j) u[j] = (static_cast<double>(j) + rng_.uniform()) * seg;
        tree_->find_batch(slot, u, n, idx);
        const float p_min = tree_->min(slot), b = static_cast<float>(beta);
        for (int64_t j = 0; j < n; ++j) weights[j] = std::pow(p_min / tree_->leaf(idx[j]), b);
    }

    RowStorage storage_;
    ReplayOptions opt_;
    Rng rng_;
    std::unique_ptr<PriorityTree> tree_;
    int64_t option_field_ = -1;
    std::vector<int64_t> counts_;
    int64_t size_ = 0, pos_ = 0;
    double max_priority_ = 1.0;
    std::vector<double> scratch_;
    std::mutex mu_;
};

}  // namespace hrlkit
