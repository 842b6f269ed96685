// Column ring storage: each field is one contiguous array of `capacity` rows, so a batch of one
// field is a single gather and a vector env's n rows are one or two memcpy's per field.
#pragma once
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "checked.hpp"
#include "memory.hpp"

namespace hrlkit {

enum class DType : int { float32 = 0, float64 = 1, int64 = 2, int32 = 3, uint8 = 4, bool_ = 5 };

inline int64_t dtype_size(DType d) {
    switch (d) {
        case DType::float32: case DType::int32: return 4;
        case DType::float64: case DType::int64: return 8;
        case DType::uint8: case DType::bool_: return 1;
    }
    throw std::invalid_argument("unknown dtype code");
}

struct Field {
    std::string name;
    std::vector<int64_t> shape;  // per row
    DType dtype = DType::float32;

    CheckedSize row_elems() const {
        CheckedSize n = 1;
        for (int64_t s : shape) n = n * s;
        return n;
    }
    CheckedSize row_bytes() const { return row_elems() * dtype_size(dtype); }
};

class ColumnStorage {
public:
    static constexpr int64_t kRowPad = 16;

    ColumnStorage(int64_t capacity, std::vector<Field> fields)
        : capacity_(capacity), fields_(std::move(fields)), row_bytes_(check(capacity, fields_)) {
        // Rows are padded to a multiple of kRowPad so fixed-width scans (the priority tree
        // reads the option column 16 rows at a time) never run past the end; pad rows stay 0.
        for (int64_t rb : row_bytes_) columns_.emplace_back(static_cast<size_t>((padded_rows(capacity_) * rb).value()));
        CheckedSize b = 0;
        for (int64_t rb : row_bytes_) b = b + CheckedSize(rb) * capacity_;
        bytes_ = b.value();
    }

    // The arguments' checks, before anything is allocated; the bytes of one row of each field.
    static std::vector<int64_t> check(int64_t capacity, const std::vector<Field>& fields) {
        if (capacity <= 0) throw std::invalid_argument("capacity: expected an integer > 0, got " + std::to_string(capacity));
        if (fields.empty()) throw std::invalid_argument("spec: expected at least one field, got none");
        std::vector<int64_t> row_bytes;
        for (const Field& f : fields) {
            for (int64_t s : f.shape)
                if (s <= 0) throw std::invalid_argument("spec['" + f.name + "']: expected positive dimensions");
            const CheckedSize rb = f.row_bytes();
            if (!rb.ok()) {
                std::string shape;
                for (int64_t s : f.shape) shape += (shape.empty() ? "" : ", ") + std::to_string(s);
                throw std::invalid_argument("spec['" + f.name + "']: expected a row shape whose size in bytes fits in 64 bits, got (" +
                                            shape + ")");
            }
            row_bytes.push_back(rb.value());
        }
        return row_bytes;
    }

    // Bytes of the columns of `capacity` rows (padded), overflowed when they do not fit in int64.
    static CheckedSize footprint(int64_t capacity, const std::vector<int64_t>& row_bytes) {
        CheckedSize b = 0;
        for (int64_t rb : row_bytes) b = b + padded_rows(capacity) * rb;
        return b;
    }
    static CheckedSize padded_rows(int64_t capacity) { return round_up(capacity, kRowPad); }

    int64_t capacity() const { return capacity_; }
    int64_t num_fields() const { return static_cast<int64_t>(fields_.size()); }
    const Field& field(int64_t i) const { return fields_[static_cast<size_t>(i)]; }
    const std::vector<Field>& fields() const { return fields_; }
    int64_t row_bytes(int64_t i) const { return row_bytes_[static_cast<size_t>(i)]; }
    uint8_t* column(int64_t i) { return columns_[static_cast<size_t>(i)].data(); }
    const uint8_t* column(int64_t i) const { return columns_[static_cast<size_t>(i)].data(); }
    int64_t bytes() const { return bytes_; }  // the rows' bytes, padding excluded
    void prefault() {
        for (ZeroedBuffer& c : columns_) c.populate_all();
    }

    // Copy rows [src_row, src_row + n) of every source (contiguous [*, row] arrays) to slots
    // [slot, slot + n); the caller guarantees slot + n <= capacity. Offsets here and in gather
    // stay below capacity * row bytes, which the constructor checked, or inside the caller's
    // arrays, so they cannot wrap.
    void write(int64_t slot, int64_t n, const void* const* src, int64_t src_row) {
        for (size_t f = 0; f < columns_.size(); ++f) {
            const int64_t rb = row_bytes_[f];
            columns_[f].populate_until(static_cast<size_t>((slot + n) * rb));
            std::memcpy(columns_[f].data() + slot * rb, static_cast<const uint8_t*>(src[f]) + src_row * rb,
                        static_cast<size_t>(n * rb));
        }
    }

    // out[f] is a contiguous [n, row] array. Row by row over every column, with the rows
    // kAhead draws later prefetched (all their cache lines, in every column), so the misses of
    // about kAhead rows x columns are in flight at once; small rows are copied inline (16-byte
    // moves), not through a libc call per field per row.
    void gather(const int64_t* idx, int64_t n, void* const* out) const {
        const size_t nf = columns_.size();
        const int64_t ahead = std::min(kAhead, n);
        for (int64_t j = 0; j < ahead; ++j) prefetch_row(idx[j]);
        for (int64_t j = 0; j < n; ++j) {
            if (j + kAhead < n) prefetch_row(idx[j + kAhead]);
            const int64_t i = idx[j];
            for (size_t f = 0; f < nf; ++f) {
                const int64_t rb = row_bytes_[f];
                copy_row(static_cast<uint8_t*>(out[f]) + j * rb, columns_[f].data() + i * rb, rb);
            }
        }
    }

private:
    static constexpr int64_t kAhead = 12;          // rows prefetched ahead of the copy
    static constexpr int64_t kPrefetchRowBytes = 512;  // longer rows: the hardware streams them

    void prefetch_row(int64_t i) const {
        for (size_t f = 0; f < columns_.size(); ++f) {
            const int64_t rb = row_bytes_[f];
            if (rb > kPrefetchRowBytes) continue;
            const uint8_t* p = columns_[f].data() + i * rb;
            for (int64_t off = 0; off < rb; off += 64) __builtin_prefetch(p + off);
            __builtin_prefetch(p + rb - 1);  // the row's last line when it straddles one more
        }
    }

    static void copy_row(uint8_t* dst, const uint8_t* src, int64_t rb) {
        switch (rb) {  // fixed-size copies compile to single moves
            case 1: *dst = *src; return;
            case 4: std::memcpy(dst, src, 4); return;
            case 8: std::memcpy(dst, src, 8); return;
            default: break;
        }
        if (rb < 16 || rb > kPrefetchRowBytes) {
            std::memcpy(dst, src, static_cast<size_t>(rb));
            return;
        }
        int64_t off = 0;
        for (; off + 16 <= rb; off += 16) std::memcpy(dst + off, src + off, 16);
        if (off < rb) std::memcpy(dst + rb - 16, src + rb - 16, 16);  // the tail, overlapping
    }

    int64_t capacity_;
    std::vector<Field> fields_;
    std::vector<int64_t> row_bytes_;
    std::vector<ZeroedBuffer> columns_;
    int64_t bytes_ = 0;
};

}  // namespace hrlkit
