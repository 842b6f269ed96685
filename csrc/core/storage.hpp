// Ring storage of fixed-shape rows (see RowStorage).
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

// Row storage: the fields of a row sit side by side in one block ("packed": a row of every
// field is one stretch of memory, so a sampled row costs about row-bytes / 64 cache lines
// instead of at least one line per field), except one field that may keep a column of its own
// (the replay's `option` tag, which the priority tree reads 16 consecutive rows at a time).
// Packed fields are ordered by falling element size and the row stride is rounded up to the
// largest, so every element is aligned; field i's rows are `stride(i)` bytes apart from
// `column(i)`.
class RowStorage {
public:
    static constexpr int64_t kRowPad = 16;

    // own_field: the index of the field kept as a contiguous column of its own, or -1.
    RowStorage(int64_t capacity, std::vector<Field> fields, int64_t own_field = -1)
        : capacity_(capacity), fields_(std::move(fields)), row_bytes_(check(capacity, fields_)), own_(own_field),
          layout_(plan(fields_, row_bytes_, own_)),
          // Rows are padded to a multiple of kRowPad so fixed-width scans (the priority tree reads
          // the option column 16 rows at a time) never run past the end; pad rows stay 0.
          block_(static_cast<size_t>((padded_rows(capacity_) * layout_.stride).value())),
          own_column_(own_ >= 0 ? static_cast<size_t>((padded_rows(capacity_) * row_bytes_[static_cast<size_t>(own_)]).value()) : 0) {
        CheckedSize b = 0;
        for (int64_t rb : row_bytes_) b = b + CheckedSize(rb) * capacity_;
        bytes_ = b.value();
        for (size_t f = 0; f < fields_.size(); ++f)
            if (static_cast<int64_t>(f) != own_) packed_.push_back(static_cast<int64_t>(f));
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

    // Bytes of `capacity` rows (padded), overflowed when they do not fit in int64.
    static CheckedSize footprint(int64_t capacity, const std::vector<Field>& fields, const std::vector<int64_t>& row_bytes,
                                 int64_t own_field) {
        const Layout lay = plan(fields, row_bytes, own_field);
        if (!lay.ok) return CheckedSize(-1);  // overflowed
        CheckedSize b = padded_rows(capacity) * lay.stride;
        if (own_field >= 0) b = b + padded_rows(capacity) * row_bytes[static_cast<size_t>(own_field)];
        return b;
    }
    static CheckedSize padded_rows(int64_t capacity) { return round_up(capacity, kRowPad); }

    int64_t capacity() const { return capacity_; }
    int64_t num_fields() const { return static_cast<int64_t>(fields_.size()); }
    const Field& field(int64_t i) const { return fields_[static_cast<size_t>(i)]; }
    const std::vector<Field>& fields() const { return fields_; }
    int64_t row_bytes(int64_t i) const { return row_bytes_[static_cast<size_t>(i)]; }
    // Field i of row 0; row r is stride(i) * r bytes further.
    uint8_t* column(int64_t i) { return i == own_ ? own_column_.data() : block_.data() + offset(i); }
    const uint8_t* column(int64_t i) const { return i == own_ ? own_column_.data() : block_.data() + offset(i); }
    int64_t stride(int64_t i) const { return i == own_ ? row_bytes(i) : layout_.stride; }
    int64_t own_field() const { return own_; }  // the field with a column of its own, or -1
    int64_t bytes() const { return bytes_; }  // the rows' bytes, padding excluded
    void prefault() {
        block_.populate_all();
        own_column_.populate_all();
    }

    // Copy rows [src_row, src_row + n) of every source (contiguous [*, row] arrays) to slots
    // [slot, slot + n); the caller guarantees slot + n <= capacity. Offsets here and in gather
    // stay below the padded rows' bytes, which the constructor checked, or inside the caller's
    // arrays, so they cannot wrap.
    void write(int64_t slot, int64_t n, const void* const* src, int64_t src_row) {
        const int64_t S = layout_.stride;
        block_.populate_until(static_cast<size_t>((slot + n) * S));
        for (int64_t f : packed_) {
            const int64_t rb = row_bytes_[static_cast<size_t>(f)];
            const uint8_t* from = static_cast<const uint8_t*>(src[f]) + src_row * rb;
            uint8_t* to = column(f) + slot * S;
            for (int64_t r = 0; r < n; ++r) copy_row(to + r * S, from + r * rb, rb);
        }
        if (own_ >= 0) {
            const int64_t rb = row_bytes_[static_cast<size_t>(own_)];
            own_column_.populate_until(static_cast<size_t>((slot + n) * rb));
            std::memcpy(own_column_.data() + slot * rb, static_cast<const uint8_t*>(src[own_]) + src_row * rb,
                        static_cast<size_t>(n * rb));
        }
    }

    // out[f] is a contiguous [n, row] array. Row by row, with the rows kAhead draws later
    // prefetched (every cache line of the packed row and of the own column's entry), so the
    // misses of about kAhead rows are in flight at once; small rows are copied inline (16-byte
    // moves), not through a libc call per field per row.
    void gather(const int64_t* idx, int64_t n, void* const* out) const {
        const int64_t ahead = std::min(kAhead, n), S = layout_.stride;
        for (int64_t j = 0; j < ahead; ++j) prefetch_row(idx[j]);
        for (int64_t j = 0; j < n; ++j) {
            if (j + kAhead < n) prefetch_row(idx[j + kAhead]);
            const int64_t i = idx[j];
            const uint8_t* row = block_.data() + i * S;
            for (int64_t f : packed_) {
                const int64_t rb = row_bytes_[static_cast<size_t>(f)];
                copy_row(static_cast<uint8_t*>(out[f]) + j * rb, row + offset(f), rb);
            }
            if (own_ >= 0) {
                const int64_t rb = row_bytes_[static_cast<size_t>(own_)];
                copy_row(static_cast<uint8_t*>(out[own_]) + j * rb, own_column_.data() + i * rb, rb);
            }
        }
    }

private:
    static constexpr int64_t kAhead = 12;              // rows prefetched ahead of the copy
    static constexpr int64_t kPrefetchRowBytes = 512;  // longer rows: the hardware streams them

    struct Layout {
        std::vector<int64_t> offsets;  // per field (the own field's unused)
        int64_t stride = 0;            // bytes per packed row
        bool ok = true;                // false when the stride overflows int64
    };

    // Packed fields by falling element size (then in spec order), each at an offset that is a
    // multiple of its element size; the stride rounded up to the largest element size.
    static Layout plan(const std::vector<Field>& fields, const std::vector<int64_t>& row_bytes, int64_t own) {
        Layout lay;
        lay.offsets.assign(fields.size(), 0);
        std::vector<size_t> order;
        for (size_t f = 0; f < fields.size(); ++f)
            if (static_cast<int64_t>(f) != own) order.push_back(f);
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
            return dtype_size(fields[a].dtype) > dtype_size(fields[b].dtype);
        });
        CheckedSize at = 0;
        int64_t align = 1;
        for (size_t f : order) {
            lay.offsets[f] = at.ok() ? at.value() : 0;
            at = at + row_bytes[f];
            align = std::max(align, dtype_size(fields[f].dtype));
        }
        const CheckedSize stride = at.ok() ? round_up(std::max<int64_t>(at.value(), 1), align) : at;
        lay.ok = stride.ok();
        lay.stride = lay.ok ? stride.value() : 0;
        return lay;
    }

    int64_t offset(int64_t i) const { return layout_.offsets[static_cast<size_t>(i)]; }

    void prefetch_row(int64_t i) const {
        const int64_t S = layout_.stride;
        if (S <= kPrefetchRowBytes) {
            const uint8_t* p = block_.data() + i * S;
            for (int64_t off = 0; off < S; off += 64) prefetch(p + off);
            prefetch(p + S - 1);  // the row's last line when it straddles one more
        }
        if (own_ >= 0) prefetch(own_column_.data() + i * row_bytes_[static_cast<size_t>(own_)]);
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
    int64_t own_;
    Layout layout_;
    ZeroedBuffer block_;       // the packed rows
    ZeroedBuffer own_column_;  // the own field's column (empty when there is none)
    std::vector<int64_t> packed_;
    int64_t bytes_ = 0;
};

}  // namespace hrlkit
