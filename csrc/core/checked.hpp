// Overflow-checked sizes. A buffer's byte size is a product of numbers the user chose (capacity,
// a field's shape, num_options); computed in plain 64-bit arithmetic it can wrap to a small value,
// and the buffer would then allocate a small block and write far past its end. Every such size
// is computed as a CheckedSize, which remembers an overflow instead of wrapping.
#pragma once
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

namespace hrlkit {

class CheckedSize {
public:
    CheckedSize(int64_t v = 0) : v_(v), ok_(v >= 0) {}  // NOLINT: implicit, so sizes read as arithmetic

    bool ok() const { return ok_; }
    // The value of a size already checked (by ok() or the caller's own check): reaching an
    // overflowed one here is a bug in that check, reported rather than wrapped.
    int64_t value() const {
        if (!ok_) throw std::length_error("internal error: an unchecked size overflowed 64 bits");
        return v_;
    }

    friend CheckedSize operator*(CheckedSize a, CheckedSize b) {
        CheckedSize r;
        r.ok_ = a.ok_ && b.ok_ && !__builtin_mul_overflow(a.v_, b.v_, &r.v_);
        return r;
    }
    friend CheckedSize operator+(CheckedSize a, CheckedSize b) {
        CheckedSize r;
        r.ok_ = a.ok_ && b.ok_ && !__builtin_add_overflow(a.v_, b.v_, &r.v_);
        return r;
    }

private:
    int64_t v_ = 0;
    bool ok_ = true;
};

// ceil(n / k) for n >= 0, k > 0, without the n + k - 1 that wraps for n near INT64_MAX.
inline int64_t ceil_div(int64_t n, int64_t k) { return n / k + (n % k != 0); }

// n rounded up to a multiple of k.
inline CheckedSize round_up(int64_t n, int64_t k) { return CheckedSize(ceil_div(n, k)) * k; }

// A failed allocation that says which argument asked for the memory. pybind11 turns every
// std::bad_alloc into MemoryError with what() as its message, so this one reaches Python as
// "MemoryError: capacity: ...", where a plain std::bad_alloc would say only "std::bad_alloc".
class AllocationError : public std::bad_alloc {
public:
    explicit AllocationError(std::string message) : message_(std::move(message)) {}
    const char* what() const noexcept override { return message_.c_str(); }

private:
    std::string message_;
};

}  // namespace hrlkit
