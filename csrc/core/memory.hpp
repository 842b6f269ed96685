// Large zero-initialised arrays for replay columns and trees: pages become resident only when
// written, and on Linux they are offered to transparent huge pages, which cuts the TLB misses of
// random row gathers over hundreds of MB.
#pragma once
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <new>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace hrlkit {

// A read prefetch of the cache line holding p (nothing is loaded, p need not be dereferenceable).
// An asm statement rather than __builtin_prefetch: GCC 12 at -O1 and above deleted every
// __builtin_prefetch of the gather, the descent and the priority update as dead code (none was
// left in the built module; -fno-tree-dce kept them), so the batches' misses were not overlapped.
inline void prefetch(const void* p) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    asm volatile("prefetcht0 (%0)" : : "r"(p));
#elif defined(__GNUC__) && defined(__aarch64__)
    asm volatile("prfm pldl1keep, [%0]" : : "r"(p));
#else
    (void)p;
#endif
}

class ZeroedBuffer {
public:
    ZeroedBuffer() = default;
    explicit ZeroedBuffer(size_t bytes) : bytes_(bytes) {
        if (bytes == 0) return;
#if defined(__linux__)
        if (bytes >= kHugeThreshold) {
            // Mapped with a huge page's slack and trimmed to start on a 2 MB boundary: THP backs
            // only whole aligned 2 MB ranges, and an unaligned map loses its first and last.
            const size_t span = bytes + kHugePage;
            void* p = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) throw std::bad_alloc();
            const uintptr_t at = reinterpret_cast<uintptr_t>(p), start = (at + kHugePage - 1) & ~(kHugePage - 1);
            if (start > at) munmap(p, start - at);
            if (at + span > start + bytes) munmap(reinterpret_cast<void*>(start + bytes), at + span - start - bytes);
            data_ = reinterpret_cast<uint8_t*>(start);
            madvise(data_, bytes, MADV_HUGEPAGE);  // advisory: ignored where THP is off
            mapped_ = true;
            return;
        }
#endif
        data_ = static_cast<uint8_t*>(std::calloc(bytes, 1));
        if (!data_) throw std::bad_alloc();
    }
    ~ZeroedBuffer() { release(); }
    ZeroedBuffer(const ZeroedBuffer&) = delete;
    ZeroedBuffer& operator=(const ZeroedBuffer&) = delete;
    ZeroedBuffer(ZeroedBuffer&& o) noexcept { *this = std::move(o); }
    ZeroedBuffer& operator=(ZeroedBuffer&& o) noexcept {
        if (this != &o) {
            release();
            data_ = std::exchange(o.data_, nullptr);
            bytes_ = std::exchange(o.bytes_, 0);
            mapped_ = std::exchange(o.mapped_, false);
            populated_ = std::exchange(o.populated_, 0);
            populate_ok_ = std::exchange(o.populate_ok_, true);
        }
        return *this;
    }

    // The first write to a fresh page costs a fault per 4 KB page (per 2 MB huge page where THP
    // backs it), and in a VM each fault also exits to the hypervisor: a 1M-row buffer's first
    // fill paid about 10x its copies in faults. Before rows are written up to byte `end`, the
    // pages up to the next kPopulateChunk boundary are made resident in one call
    // (MADV_POPULATE_WRITE, Linux 5.14+; where it is missing the pages fault one by one, as
    // before). Only pages about to be written become resident: an empty buffer still holds none.
    void populate_until(size_t end) {
#if defined(__linux__)
        if (!mapped_ || end <= populated_) return;
        const size_t upto = std::min(bytes_, (end + kPopulateChunk - 1) / kPopulateChunk * kPopulateChunk);
        if (!populate_ok_ || madvise(data_ + populated_, upto - populated_, kPopulateWrite) != 0) populate_ok_ = false;
        populated_ = upto;
#else
        (void)end;
#endif
    }

    // Every page resident now (the constructors' `prefault`): the cost of first touching the
    // memory moves from the first writes into this call. Pages the kernel will not populate in
    // one call are written one by one (each a zero, which they hold already).
    void populate_all() {
        if (!data_) return;
#if defined(__linux__)
        if (mapped_) {
            const size_t from = populated_;
            const bool ok = populate_ok_ && madvise(data_ + from, bytes_ - from, kPopulateWrite) == 0;
            populated_ = bytes_;
            if (ok) return;
            populate_ok_ = false;
            touch(from);
            return;
        }
#endif
        touch(0);
    }

    uint8_t* data() { return data_; }
    const uint8_t* data() const { return data_; }
    size_t bytes() const { return bytes_; }
    template <class T> T* as() { return reinterpret_cast<T*>(data_); }
    template <class T> const T* as() const { return reinterpret_cast<const T*>(data_); }

private:
    static constexpr size_t kHugePage = size_t{2} << 20;
    static constexpr size_t kHugeThreshold = kHugePage;
    static constexpr size_t kPopulateChunk = kHugePage;  // what one huge-page fault makes resident anyway
    static constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE, spelled out for older headers
    void touch(size_t from) {
        volatile uint8_t* p = data_;
        for (size_t off = from; off < bytes_; off += 4096) p[off] = 0;
    }
    void release() {
        if (!data_) return;
#if defined(__linux__)
        if (mapped_) { munmap(data_, bytes_); data_ = nullptr; return; }
#endif
        std::free(data_);
        data_ = nullptr;
    }
    uint8_t* data_ = nullptr;
    size_t bytes_ = 0;
    bool mapped_ = false;
    size_t populated_ = 0;     // bytes [0, populated_) made resident (or tried)
    bool populate_ok_ = true;  // false once the kernel refused MADV_POPULATE_WRITE
};

}  // namespace hrlkit
