// pybind11 glue of hrlkit._cuda: device pointers arrive as integers (torch's data_ptr()) with
// their sizes and torch's current stream; no torch or CUDA headers here. The Python layer
// (hrlkit/_cuda_ops.py) checks devices, dtypes, shapes and contiguity before any call.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.h"

namespace py = pybind11;
namespace hc = hrlkit::cuda;

namespace {

template <class T>
T* ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }

class Tree {
public:
    Tree(uintptr_t leaves, uintptr_t tags, uintptr_t sums, uintptr_t mins, const std::vector<int64_t>& offsets,
         const std::vector<int64_t>& strides, int slots) {
        if (offsets.empty() || offsets.size() != strides.size() || offsets.size() > hc::kMaxLevels)
            throw std::invalid_argument("offsets/strides: expected 1.." + std::to_string(hc::kMaxLevels) + " levels of equal count");
        if (slots < 1) throw std::invalid_argument("slots: expected >= 1");
        v_.leaves = ptr<float>(leaves);
        v_.tags = ptr<const int64_t>(tags);
        v_.sums = ptr<double>(sums);
        v_.mins = ptr<float>(mins);
        for (size_t l = 0; l < offsets.size(); ++l) {
            v_.offsets[l] = offsets[l];
            v_.strides[l] = strides[l];
        }
        v_.levels = static_cast<int>(offsets.size());
        v_.slots = slots;
    }
    const hc::TreeView* view() const { return &v_; }
    int slots() const { return v_.slots; }
    void update(uintptr_t idx, uintptr_t td, bool td_f64, int64_t n, double alpha, double eps, uintptr_t max_priority,
                uintptr_t owner, uintptr_t stream) {
        hc::tree_update(v_, ptr<const int64_t>(idx), ptr<const void>(td), td_f64, n, alpha, eps, ptr<double>(max_priority),
                        ptr<int32_t>(owner), stream);
    }
    void fill(int64_t lo, int64_t count, int64_t capacity, int mode, uintptr_t max_priority, double alpha, uintptr_t stream) {
        hc::tree_fill(v_, lo, count, capacity, mode, ptr<const double>(max_priority), alpha, stream);
    }

private:
    hc::TreeView v_{};
};

struct Pointers {
    std::vector<const void*> src;
    std::vector<void*> dst;
};

Pointers pointers(const std::vector<uintptr_t>& src, const std::vector<uintptr_t>& dst, const std::vector<int64_t>& row_bytes) {
    if (src.size() != dst.size() || src.size() != row_bytes.size())
        throw std::invalid_argument("src, dst and row_bytes must have the same length");
    Pointers p{std::vector<const void*>(src.size()), std::vector<void*>(dst.size())};
    for (size_t c = 0; c < src.size(); ++c) {
        p.src[c] = ptr<const void>(src[c]);
        p.dst[c] = ptr<void>(dst[c]);
    }
    return p;
}

// Draws and the drawn rows in one launch (see kernels.h); tree may be None (uniform rows).
void sample(const Tree* tree, int slot, int64_t n, int64_t size, uintptr_t rand, uintptr_t beta, uintptr_t idx,
            uintptr_t weights, const std::vector<uintptr_t>& src, const std::vector<uintptr_t>& dst,
            const std::vector<int64_t>& row_bytes, uintptr_t stream) {
    if (tree && (slot < 0 || slot >= tree->slots())) throw std::out_of_range("slot: out of range");
    const Pointers p = pointers(src, dst, row_bytes);
    hc::sample(tree ? tree->view() : nullptr, slot, n, size, ptr<const double>(rand), ptr<const double>(beta), ptr<int64_t>(idx),
               ptr<float>(weights), static_cast<int>(src.size()), p.src.data(), p.dst.data(), row_bytes.data(), stream);
}

void gather(const std::vector<uintptr_t>& src, const std::vector<uintptr_t>& dst, const std::vector<int64_t>& row_bytes,
            uintptr_t idx, int64_t n, uintptr_t stream) {
    const Pointers p = pointers(src, dst, row_bytes);
    hc::gather(static_cast<int>(src.size()), p.src.data(), p.dst.data(), row_bytes.data(), ptr<const int64_t>(idx), n, stream);
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "hrlkit's CUDA kernels over raw device pointers (see hrlkit/_cuda_ops.py)";
    py::class_<Tree>(m, "Tree")
        .def(py::init<uintptr_t, uintptr_t, uintptr_t, uintptr_t, const std::vector<int64_t>&, const std::vector<int64_t>&, int>())
        .def("update", &Tree::update)
        .def("fill", &Tree::fill);
    m.def("sample", &sample, py::arg("tree").none(true), py::arg("slot"), py::arg("n"), py::arg("size"), py::arg("rand"),
          py::arg("beta"), py::arg("idx"), py::arg("weights"), py::arg("src"), py::arg("dst"), py::arg("row_bytes"),
          py::arg("stream"));
    m.def("gather", &gather);
    m.def("nstep_returns", [](bool f64, uintptr_t r, uintptr_t term, uintptr_t trunc, uintptr_t oe, uintptr_t nv, int64_t T,
                              int64_t N, double gamma, double lam, int64_t n, uintptr_t ret, uintptr_t disc, uintptr_t steps,
                              uintptr_t s) {
        hc::nstep_returns(f64, ptr<const void>(r), ptr<const uint8_t>(term), ptr<const uint8_t>(trunc), ptr<const uint8_t>(oe),
                          ptr<const void>(nv), T, N, gamma, lam, n, ptr<void>(ret), ptr<void>(disc), ptr<int64_t>(steps), s);
    });
    m.def("option_values", [](bool f64, uintptr_t q, int64_t B, int64_t K, double eps, uintptr_t out, uintptr_t s) {
        hc::option_values(f64, ptr<const void>(q), B, K, eps, ptr<void>(out), s);
    });
    m.def("option_bootstrap", [](bool f64, uintptr_t q, uintptr_t beta, bool per_option, uintptr_t options, int64_t B,
                                 int64_t K, double eps, uintptr_t out, uintptr_t s) {
        hc::option_bootstrap(f64, ptr<const void>(q), ptr<const void>(beta), per_option, ptr<const int64_t>(options), B, K,
                             eps, ptr<void>(out), s);
    });
    m.def("soft_option_targets", [](bool f64, uintptr_t q_next, uintptr_t logp, uintptr_t q_omega, uintptr_t beta,
                                    uintptr_t options, uintptr_t rewards, uintptr_t discounts, uintptr_t alpha, int64_t B,
                                    int64_t K, double tau, bool soft, double xi, uintptr_t q_option, uintptr_t value,
                                    uintptr_t target, uintptr_t advantage, uintptr_t s) {
        hc::soft_option_targets(f64, ptr<const void>(q_next), ptr<const void>(logp), ptr<const void>(q_omega),
                                ptr<const void>(beta), ptr<const int64_t>(options), ptr<const void>(rewards),
                                ptr<const void>(discounts), ptr<const void>(alpha), B, K, tau, soft, xi, ptr<void>(q_option),
                                ptr<void>(value), ptr<void>(target), ptr<void>(advantage), s);
    });
    m.def("skill_rewards", [](bool f64, uintptr_t logits, uintptr_t skills, int64_t B, int64_t Z, uintptr_t reward,
                              uintptr_t correct, uintptr_t s) {
        hc::skill_rewards(f64, ptr<const void>(logits), ptr<const int64_t>(skills), B, Z, ptr<void>(reward),
                          ptr<uint8_t>(correct), s);
    });
    m.def("feudal_terms", [](bool f64, uintptr_t states, uintptr_t goals, uintptr_t starts, int64_t L, int64_t N, int64_t D,
                             int64_t c, double eps, uintptr_t intrinsic, uintptr_t direction, uintptr_t horizon, uintptr_t s) {
        hc::feudal_terms(f64, ptr<const void>(states), ptr<const void>(goals), ptr<const uint8_t>(starts), L, N, D, c, eps,
                         ptr<void>(intrinsic), ptr<void>(direction), ptr<int64_t>(horizon), s);
    });
}
