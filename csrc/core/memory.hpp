// Large zero-initialised arrays for replay columns and trees: pages become resident only when
// written, and on Linux they are offered to transparent huge pages, which cuts the TLB misses of
// random row gathers over hundreds of MB.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace hrlkit {

class ZeroedBuffer {
public:
    ZeroedBuffer() = default;
    explicit ZeroedBuffer(size_t bytes) : bytes_(bytes) {
        if (bytes == 0) return;
#if defined(__linux__)
        if (bytes >= kHugeThreshold) {
            void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) throw std::bad_alloc();
            madvise(p, bytes, MADV_HUGEPAGE);  // advisory: ignored where THP is off
            data_ = static_cast<uint8_t*>(p);
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
        }
        return *this;
    }

    uint8_t* data() { return data_; }
    const uint8_t* data() const { return data_; }
    size_t bytes() const { return bytes_; }
    template <class T> T* as() { return reinterpret_cast<T*>(data_); }
    template <class T> const T* as() const { return reinterpret_cast<const T*>(data_); }

private:
    static constexpr size_t kHugeThreshold = size_t{4} << 20;
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
};

}  // namespace hrlkit
