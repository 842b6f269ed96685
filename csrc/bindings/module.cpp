// pybind11 glue: numpy views, conversions and GIL handling. No algorithmic code lives here;
// everything it calls is in csrc/core. The replay's arguments are checked by its Python face
// (hrlkit._replay_checks), which names the problem when the core refuses a call; the checks here
// are the invariants the copies rely on (a row's size, dtype and count), with terse messages.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "../core/replay.hpp"
#include "../core/returns.hpp"

namespace py = pybind11;
using hrlkit::DType;
using hrlkit::Field;

namespace {

const char* dtype_name(DType d) {
    switch (d) {
        case DType::float32: return "float32";
        case DType::float64: return "float64";
        case DType::int64: return "int64";
        case DType::int32: return "int32";
        case DType::uint8: return "uint8";
        case DType::bool_: return "bool";
    }
    return "?";
}

// An array's shape as Python prints a tuple: (), (3,), (2, 3).
std::string array_shape_str(const py::array& a) {
    std::ostringstream o;
    o << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) o << a.shape(i) << (a.ndim() == 1 ? "," : (i + 1 < a.ndim() ? ", " : ""));
    o << ")";
    return o.str();
}

[[noreturn]] void refuse_field(const std::string& name) { hrlkit::refuse("add: field '" + name + "'"); }

// One scalar written from a Python bool/int/float, with numpy's "same_kind" rule.
bool write_python_scalar(PyObject* o, DType d, const std::string& name, uint8_t* dst) {
    const bool is_bool = PyBool_Check(o), is_int = !is_bool && PyLong_Check(o), is_float = PyFloat_Check(o);
    if (!is_bool && !is_int && !is_float) return false;
    switch (d) {
        case DType::float32: { float v = static_cast<float>(PyFloat_AsDouble(o)); std::memcpy(dst, &v, 4); return true; }
        case DType::float64: { double v = PyFloat_AsDouble(o); std::memcpy(dst, &v, 8); return true; }
        case DType::bool_:
            if (!is_bool) refuse_field(name);
            dst[0] = o == Py_True;
            return true;
        case DType::int64: case DType::int32: case DType::uint8: {
            if (is_float) refuse_field(name);
            int overflow = 0;
            const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
            const long long lo = d == DType::int64 ? INT64_MIN : d == DType::int32 ? INT32_MIN : 0;
            const long long hi = d == DType::int64 ? INT64_MAX : d == DType::int32 ? INT32_MAX : 255;
            if (overflow || v < lo || v > hi) refuse_field(name);
            if (d == DType::int64) { int64_t x = v; std::memcpy(dst, &x, 8); }
            else if (d == DType::int32) { int32_t x = static_cast<int32_t>(v); std::memcpy(dst, &x, 4); }
            else dst[0] = static_cast<uint8_t>(v);
            return true;
        }
    }
    return false;
}

// ---- numpy values other than a field's own dtype, converted here rather than through numpy.
// A numpy scalar (np.float32(0.5), np.bool_(True), np.int64(3)) or a small array of another
// numeric dtype (a float64 row into a float32 field, a 0-d array) would otherwise cost an
// np.asarray, an np.can_cast and an astype per field. The conversions are numpy's own C casts,
// and only where numpy's 'same_kind' rule allows them (the table below is asked of numpy itself,
// once); anything else takes the general path, which refuses it with the same message as before.

struct NumericKind {
    char kind = 0;  // 'b', 'i', 'u', 'f'; 0: not one we convert
    int size = 0;
};

constexpr int kNumDTypes = 6;

// kinds: b1 i1 i2 i4 i8 u1 u2 u4 u8 f4 f8
constexpr NumericKind kKinds[] = {{'b', 1}, {'i', 1}, {'i', 2}, {'i', 4}, {'i', 8}, {'u', 1},
                                  {'u', 2}, {'u', 4}, {'u', 8}, {'f', 4}, {'f', 8}};
constexpr int kNumKinds = sizeof(kKinds) / sizeof(kKinds[0]);

int kind_index(char kind, int size) {
    for (int k = 0; k < kNumKinds; ++k)
        if (kKinds[k].kind == kind && kKinds[k].size == size) return k;
    return -1;
}

// What numpy knows, asked once: same_kind[k][d] (kind k casts to field dtype d), and the exact
// numpy scalar types of each kind. The type objects are kept (one reference each, never
// released) so their addresses stay valid for the whole run.
struct NumpyTables {
    bool same_kind[kNumKinds][kNumDTypes] = {};
    std::vector<std::pair<PyTypeObject*, int>> scalar_types;  // exact type -> kind index
};


const NumpyTables& numpy_tables() {
    static const NumpyTables* tables = [] {
        auto* t = new NumpyTables();  // never freed: it must outlive every buffer, and holds no Python objects to release
        const py::module_ np = py::module_::import("numpy");
        const py::object can_cast = np.attr("can_cast"), dtype = np.attr("dtype");
        for (int k = 0; k < kNumKinds; ++k) {
            const py::object src = dtype(std::string(1, kKinds[k].kind) + std::to_string(kKinds[k].size));
            for (int d = 0; d < kNumDTypes; ++d)
                t->same_kind[k][d] = can_cast(src, dtype(dtype_name(static_cast<DType>(d))), "same_kind").cast<bool>();
            // every scalar type of this kind (np.int64 and np.longlong are distinct types of one kind)
            for (const char* name : {"bool_", "byte", "ubyte", "short", "ushort", "intc", "uintc", "int_", "uint",
                                     "longlong", "ulonglong", "single", "double"}) {
                if (!py::hasattr(np, name)) continue;
                py::object type = np.attr(name);
                const py::dtype dt = py::dtype::from_args(type);
                if (kind_index(dt.kind(), static_cast<int>(dt.itemsize())) != k) continue;
                auto* tp = reinterpret_cast<PyTypeObject*>(type.release().ptr());  // the kept reference
                t->scalar_types.emplace_back(tp, k);
            }
        }
        return t;
    }();
    return *tables;
}

template <class T>
T load_as(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

// n values of kind k at src into n values of dtype d at dst, as numpy's C casts do.
template <class To>
void convert_to(int k, const uint8_t* src, int64_t n, uint8_t* dst) {
    const int size = kKinds[k].size;
    for (int64_t j = 0; j < n; ++j, src += size, dst += sizeof(To)) {
        To v;
        switch (kKinds[k].kind) {
            case 'b': v = static_cast<To>(*src != 0); break;
            case 'i':
                v = size == 1 ? static_cast<To>(load_as<int8_t>(src)) : size == 2 ? static_cast<To>(load_as<int16_t>(src))
                  : size == 4 ? static_cast<To>(load_as<int32_t>(src)) : static_cast<To>(load_as<int64_t>(src));
                break;
            case 'u':
                v = size == 1 ? static_cast<To>(load_as<uint8_t>(src)) : size == 2 ? static_cast<To>(load_as<uint16_t>(src))
                  : size == 4 ? static_cast<To>(load_as<uint32_t>(src)) : static_cast<To>(load_as<uint64_t>(src));
                break;
            default: v = size == 4 ? static_cast<To>(load_as<float>(src)) : static_cast<To>(load_as<double>(src));
        }
        std::memcpy(dst, &v, sizeof(To));
    }
}

void convert(int k, const uint8_t* src, int64_t n, DType d, uint8_t* dst) {
    switch (d) {
        case DType::float32: convert_to<float>(k, src, n, dst); return;
        case DType::float64: convert_to<double>(k, src, n, dst); return;
        case DType::int64: convert_to<int64_t>(k, src, n, dst); return;
        case DType::int32: convert_to<int32_t>(k, src, n, dst); return;
        case DType::uint8: convert_to<uint8_t>(k, src, n, dst); return;
        case DType::bool_: convert_to<bool>(k, src, n, dst); return;  // only from bool: same_kind allows nothing else
    }
}

// A numpy scalar of an exact numpy type into one value of field dtype d; false when it is not
// one, or when 'same_kind' does not allow the cast (the general path then refuses it).
bool write_numpy_scalar(PyObject* o, DType d, uint8_t* dst) {
    const NumpyTables& t = numpy_tables();
    for (const auto& [type, k] : t.scalar_types) {
        if (Py_TYPE(o) != type) continue;
        if (!t.same_kind[k][static_cast<int>(d)]) return false;
        // numpy's scalar objects hold their value right after the object header (PyArrayScalar_VAL)
        convert(k, reinterpret_cast<const uint8_t*>(o) + sizeof(PyObject), 1, d, dst);
        return true;
    }
    return false;
}

// The numeric kind of a C-contiguous, native-endian array that same_kind lets into
// field dtype d, or -1.
int convertible_kind(const py::array& a, DType d) {
    const py::dtype dt = a.dtype();
    if (dt.byteorder() == '>' || !(a.flags() & py::array::c_style)) return -1;  // the copies read unaligned values (memcpy)
    const int k = kind_index(dt.kind(), static_cast<int>(dt.itemsize()));
    return k >= 0 && numpy_tables().same_kind[k][static_cast<int>(d)] ? k : -1;
}

using Spec = std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>>;

std::vector<Field> make_fields(const Spec& spec) {
    std::vector<Field> out;
    for (const auto& [name, shape, dt] : spec) {
        Field f;
        f.name = name;
        f.shape = shape;
        static const std::pair<const char*, DType> table[] = {
            {"float32", DType::float32}, {"float64", DType::float64}, {"int64", DType::int64},
            {"int32", DType::int32},     {"uint8", DType::uint8},     {"bool", DType::bool_}};
        bool found = false;
        for (const auto& [k, v] : table)
            if (dt == k) { f.dtype = v; found = true; }
        if (!found) throw py::value_error("spec['" + name + "']: unsupported dtype " + dt);
        out.push_back(std::move(f));
    }
    return out;
}

template <class T>
py::array_t<T> new_array(std::vector<py::ssize_t> shape) { return py::array_t<T>(shape); }

class PyReplay {
public:
    PyReplay(int64_t capacity, const Spec& spec, int64_t num_options, bool prioritized, double alpha, double eps, uint64_t seed,
             bool prefault)
        : core_(capacity, make_fields(spec), hrlkit::ReplayOptions{num_options, prioritized, alpha, eps, seed, prefault}) {
        for (const Field& f : core_.storage().fields()) {
            names_.emplace_back(f.name);
            dtypes_.push_back(py::dtype(dtype_name(f.dtype)));
        }
    }

    // ---- add: the hot path; the whole row set is checked before the core writes anything. `validate`
    // is the storages' common signature: these checks are part of the copy and always run.
    void add(const py::dict& kw, bool /*validate*/) {
        const auto& fields = core_.storage().fields();
        const size_t nf = fields.size();
        std::vector<py::object> keep(nf);
        std::vector<const void*> ptrs(nf);
        std::vector<std::array<uint8_t, 8>> scalars(nf);
        std::vector<std::vector<uint8_t>> converted(nf);
        int64_t n = -1;
        for (size_t f = 0; f < nf; ++f) {
            const Field& fd = fields[f];
            PyObject* o = PyDict_GetItemWithError(kw.ptr(), names_[f].ptr());
            if (!o) {
                if (PyErr_Occurred()) throw py::error_already_set();
                refuse_field(fd.name);
            }
            int64_t rows;
            if (fd.shape.empty() &&
                (write_python_scalar(o, fd.dtype, fd.name, scalars[f].data()) || write_numpy_scalar(o, fd.dtype, scalars[f].data()))) {
                ptrs[f] = scalars[f].data();
                rows = 1;
            } else if (py::isinstance<py::array>(o) && !py::reinterpret_borrow<py::array>(o).dtype().is(dtypes_[f])) {
                // another numeric dtype (a float64 row into a float32 field): converted here
                const py::array a = py::reinterpret_borrow<py::array>(o);
                const int k = convertible_kind(a, fd.dtype);
                if (k < 0) {
                    py::array c = as_field_array(py::reinterpret_borrow<py::object>(o), f);  // the general path
                    rows = rows_of(c, fd);
                    ptrs[f] = c.data();
                    keep[f] = std::move(c);
                } else {
                    rows = rows_of(a, fd);
                    converted[f].resize(static_cast<size_t>(a.size() * hrlkit::dtype_size(fd.dtype)));
                    convert(k, static_cast<const uint8_t*>(a.data()), a.size(), fd.dtype, converted[f].data());
                    ptrs[f] = converted[f].data();
                }
            } else {
                py::array a = as_field_array(py::reinterpret_borrow<py::object>(o), f);
                rows = rows_of(a, fd);
                ptrs[f] = a.data();
                keep[f] = std::move(a);
            }
            if (n < 0) n = rows;
            else if (rows != n)
                refuse_field(fd.name);
        }
        if (static_cast<size_t>(PyDict_Size(kw.ptr())) != nf) {
            for (auto item : kw) {
                const std::string key = py::str(item.first).cast<std::string>();
                bool known = false;
                for (const Field& fd : fields) known = known || fd.name == key;
                if (!known) refuse_field(key);
            }
        }
        py::gil_scoped_release nogil;
        core_.add(n, ptrs.data());
    }

    // ---- sample / gather: outputs allocated with the GIL, filled without it.
    py::dict sample(int64_t batch_size, int64_t option, double beta) {
        if (batch_size <= 0) hrlkit::refuse("sample: batch_size <= 0");  // before the batch is allocated
        std::vector<void*> outs;
        py::dict batch = alloc_batch(batch_size, outs);
        auto idx = new_array<int64_t>({batch_size});
        int64_t* ip = idx.mutable_data();
        float* wp = nullptr;
        if (core_.prioritized()) {
            auto w = new_array<float>({batch_size});
            wp = w.mutable_data();
            batch["weights"] = w;
        }
        {
            py::gil_scoped_release nogil;
            core_.sample(batch_size, option, beta, ip, wp, outs.data());
        }
        batch["indices"] = idx;
        return batch;
    }

    py::dict gather(const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& indices) {
        if (indices.ndim() != 1) hrlkit::refuse("gather: indices not 1-D");
        std::vector<void*> outs;
        py::dict batch = alloc_batch(indices.shape(0), outs);
        {
            py::gil_scoped_release nogil;
            core_.gather(indices.data(), indices.shape(0), outs.data());
        }
        batch["indices"] = indices;
        return batch;
    }

    void update_priorities(const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& indices,
                           const py::array_t<double, py::array::c_style | py::array::forcecast>& td) {
        if (indices.ndim() != 1 || td.ndim() != 1 || td.shape(0) != indices.shape(0))
            hrlkit::refuse("update_priorities: not one TD error per index");
        py::gil_scoped_release nogil;
        core_.update_priorities(indices.data(), td.data(), indices.shape(0));
    }

    // ---- state views for save/load (zero-copy; they keep the buffer alive).
    py::array column(int64_t f, py::handle self) {
        // Rows are stride(f) bytes apart (packed rows: not contiguous); within a row C order.
        const Field& fd = core_.storage().field(f);
        std::vector<py::ssize_t> shape{core_.capacity()};
        shape.insert(shape.end(), fd.shape.begin(), fd.shape.end());
        std::vector<py::ssize_t> strides(shape.size());
        py::ssize_t inner = static_cast<py::ssize_t>(hrlkit::dtype_size(fd.dtype));
        for (size_t d = shape.size(); d-- > 1;) {
            strides[d] = inner;
            inner *= shape[d];
        }
        strides[0] = static_cast<py::ssize_t>(core_.storage().stride(f));
        return py::array(dtypes_[static_cast<size_t>(f)], shape, strides, core_.storage().column(f), self);
    }

    py::object priorities(py::handle self) {
        float* p = core_.priorities();
        if (!p) return py::none();
        return py::array_t<float>({core_.capacity()}, {}, p, self);
    }

    void restore(int64_t size, int64_t pos, double max_priority,
                 const std::optional<py::array_t<float, py::array::c_style | py::array::forcecast>>& leaves) {
        if (leaves && (leaves->ndim() != 1 || leaves->shape(0) < size))
            throw py::value_error("restore: priorities do not cover the saved rows");
        core_.restore(size, pos, max_priority, leaves ? leaves->data() : nullptr);
    }

    void lock() {
        py::gil_scoped_release nogil;  // the holder of the mutex never waits for the GIL
        core_.mutex().lock();
    }
    void unlock() { core_.mutex().unlock(); }

    hrlkit::Replay& core() { return core_; }

private:
    // Numpy array of field f's dtype, C-contiguous; casts only under numpy's 'same_kind' rule.
    py::array as_field_array(py::object o, size_t f) {
        const py::dtype& want = dtypes_[f];
        if (py::isinstance<py::array>(o)) {
            py::array a = py::reinterpret_borrow<py::array>(o);
            if (a.dtype().is(want) && (a.flags() & py::array::c_style)) return a;
        }
        // Not cached in statics: those would be destroyed after the interpreter is gone.
        const py::module_ np = py::module_::import("numpy");
        const py::object np_asarray = np.attr("asarray"), np_can_cast = np.attr("can_cast");
        py::array a;
        try {
            a = np_asarray(o);
        } catch (py::error_already_set&) {
            refuse_field(names_[f].cast<std::string>());
        }
        if (!a.dtype().is(want) && !np_can_cast(a.dtype(), want, "same_kind").cast<bool>())
            refuse_field(names_[f].cast<std::string>());
        return py::array::ensure(a.attr("astype")(want, py::arg("order") = "C", py::arg("copy") = false),
                                 py::array::c_style);
    }

    static int64_t rows_of(const py::array& a, const Field& fd) {
        const auto nd = static_cast<size_t>(a.ndim());
        const size_t fnd = fd.shape.size();
        bool ok = false;
        int64_t rows = 0;
        if (nd == fnd || nd == fnd + 1) {
            const size_t off = nd - fnd;
            ok = true;
            for (size_t i = 0; i < fnd; ++i) ok = ok && a.shape(static_cast<py::ssize_t>(off + i)) == fd.shape[i];
            rows = off ? a.shape(0) : 1;
        }
        if (!ok || rows <= 0) refuse_field(fd.name);
        return rows;
    }

    py::dict alloc_batch(int64_t n, std::vector<void*>& outs) {
        py::dict batch;
        const auto& fields = core_.storage().fields();
        outs.resize(fields.size());
        for (size_t f = 0; f < fields.size(); ++f) {
            std::vector<py::ssize_t> shape{n};
            shape.insert(shape.end(), fields[f].shape.begin(), fields[f].shape.end());
            py::array a(dtypes_[f], shape);
            outs[f] = a.mutable_data();
            batch[names_[f]] = std::move(a);
        }
        return batch;
    }

    hrlkit::Replay core_;
    std::vector<py::str> names_;
    std::vector<py::dtype> dtypes_;
};

// ---- kernels: the Python face (hrlkit.targets) validates and casts; here only sizes are checked.
template <class F>
py::tuple nstep_impl(const py::array_t<F, py::array::c_style>& rewards, const py::array_t<uint8_t, py::array::c_style>& term,
                     const std::optional<py::array_t<uint8_t, py::array::c_style>>& trunc,
                     const std::optional<py::array_t<uint8_t, py::array::c_style>>& opt_end,
                     const std::optional<py::array_t<F, py::array::c_style>>& next_values, double gamma, int64_t n,
                     double lam) {
    if (rewards.ndim() != 2) throw py::value_error("rewards: expected shape (T, N)");
    const int64_t T = rewards.shape(0), N = rewards.shape(1);
    auto same = [&](const py::array& a, const char* what) {
        if (a.ndim() != 2 || a.shape(0) != T || a.shape(1) != N)
            throw py::value_error(std::string(what) + ": expected shape (" + std::to_string(T) + ", " + std::to_string(N) +
                                  ") like rewards, got " + array_shape_str(a));
    };
    same(term, "terminated");
    if (trunc) same(*trunc, "truncated");
    if (opt_end) same(*opt_end, "option_terminations");
    if (next_values) same(*next_values, "next_values");
    py::array_t<F> ret({T, N}), disc({T, N});
    py::array_t<int64_t> steps({T, N});
    {
        py::gil_scoped_release nogil;
        hrlkit::nstep_returns<F>(rewards.data(), term.data(), trunc ? trunc->data() : nullptr, opt_end ? opt_end->data() : nullptr,
                                 next_values ? next_values->data() : nullptr, T, N, gamma, lam, n, ret.mutable_data(),
                                 disc.mutable_data(), steps.mutable_data());
    }
    return py::make_tuple(ret, disc, steps);
}

template <class F>
py::array_t<F> option_values_impl(const py::array_t<F, py::array::c_style>& q, double eps) {
    if (q.ndim() != 2 || q.shape(1) < 1) throw py::value_error("q: expected shape (B, K) with K >= 1, got " + array_shape_str(q));
    py::array_t<F> out({q.shape(0)});
    py::gil_scoped_release nogil;
    hrlkit::option_values<F>(q.data(), q.shape(0), q.shape(1), eps, out.mutable_data());
    return out;
}

template <class F>
py::array_t<F> option_bootstrap_impl(const py::array_t<F, py::array::c_style>& q_next, const py::array_t<F, py::array::c_style>& beta,
                                     const py::array_t<int64_t, py::array::c_style>& options, double eps) {
    if (q_next.ndim() != 2 || q_next.shape(1) < 1)
        throw py::value_error("q_next: expected shape (B, K) with K >= 1, got " + array_shape_str(q_next));
    const int64_t B = q_next.shape(0), K = q_next.shape(1);
    const bool per_option = beta.ndim() == 2;
    if (!((beta.ndim() == 1 && beta.shape(0) == B) || (per_option && beta.shape(0) == B && beta.shape(1) == K)))
        throw py::value_error("beta_next: expected shape (" + std::to_string(B) + ",) or (" + std::to_string(B) + ", " +
                              std::to_string(K) + "), got " + array_shape_str(beta));
    if (options.ndim() != 1 || options.shape(0) != B)
        throw py::value_error("options: expected shape (" + std::to_string(B) + ",), got " + array_shape_str(options));
    py::array_t<F> out({B});
    py::gil_scoped_release nogil;
    hrlkit::option_bootstrap<F>(q_next.data(), beta.data(), per_option, options.data(), B, K, eps, out.mutable_data());
    return out;
}

template <class F>
py::tuple soft_option_targets_impl(const py::array_t<F, py::array::c_style>& q_next, const py::array_t<F, py::array::c_style>& logp,
                                   const py::array_t<F, py::array::c_style>& q_omega, const py::array_t<F, py::array::c_style>& beta,
                                   const py::array_t<int64_t, py::array::c_style>& options, const py::array_t<F, py::array::c_style>& rewards,
                                   const py::array_t<F, py::array::c_style>& discounts, const py::array_t<F, py::array::c_style>& alpha,
                                   double tau, bool soft, double xi) {
    if (q_next.ndim() != 2 || q_next.shape(0) != 2) throw py::value_error("q_next: expected shape (2, B), got " + array_shape_str(q_next));
    const int64_t B = q_next.shape(1);
    if (q_omega.ndim() != 2 || q_omega.shape(0) != B || q_omega.shape(1) < 1)
        throw py::value_error("q_omega_next: expected shape (" + std::to_string(B) + ", K) with K >= 1, got " + array_shape_str(q_omega));
    const int64_t K = q_omega.shape(1);
    const std::string b1 = "(" + std::to_string(B) + ",)";
    const std::pair<const char*, const py::array*> rows[] = {{"logp_next", &logp}, {"beta_next", &beta}, {"options", &options},
                                                            {"rewards", &rewards}, {"discounts", &discounts}};
    for (const auto& [name, arr] : rows)
        if (arr->ndim() != 1 || arr->shape(0) != B)
            throw py::value_error(std::string(name) + ": expected shape " + b1 + ", got " + array_shape_str(*arr));
    if (alpha.ndim() != 1 || alpha.shape(0) != K)
        throw py::value_error("alpha: expected shape (" + std::to_string(K) + ",), got " + array_shape_str(alpha));
    py::array_t<F> q_option({B}), value({B}), target({B}), advantage({B});
    {
        py::gil_scoped_release nogil;
        hrlkit::soft_option_targets<F>(q_next.data(), logp.data(), q_omega.data(), beta.data(), options.data(), rewards.data(),
                                       discounts.data(), alpha.data(), B, K, tau, soft, xi, q_option.mutable_data(),
                                       value.mutable_data(), target.mutable_data(), advantage.mutable_data());
    }
    return py::make_tuple(q_option, value, target, advantage);
}
template <class F>
py::tuple skill_rewards_impl(const py::array_t<F, py::array::c_style>& logits, const py::array_t<int64_t, py::array::c_style>& skills) {
    if (logits.ndim() != 2 || logits.shape(1) < 1)
        throw py::value_error("logits: expected shape (B, Z) with Z >= 1, got " + array_shape_str(logits));
    const int64_t B = logits.shape(0), Z = logits.shape(1);
    if (skills.ndim() != 1 || skills.shape(0) != B)
        throw py::value_error("skills: expected shape (" + std::to_string(B) + ",), got " + array_shape_str(skills));
    py::array_t<F> reward({B});
    py::array_t<bool> correct({B});
    {
        py::gil_scoped_release nogil;
        hrlkit::skill_rewards<F>(logits.data(), skills.data(), B, Z, reward.mutable_data(),
                                 reinterpret_cast<uint8_t*>(correct.mutable_data()));
    }
    return py::make_tuple(reward, correct);
}

template <class F>
py::tuple feudal_terms_impl(const py::array_t<F, py::array::c_style>& states, const py::array_t<F, py::array::c_style>& goals,
                            const py::array_t<uint8_t, py::array::c_style>& starts, int64_t c, double eps) {
    if (states.ndim() != 3) throw py::value_error("states: expected shape (c + T, N, D), got " + array_shape_str(states));
    const int64_t L = states.shape(0), N = states.shape(1), D = states.shape(2);
    if (goals.ndim() != 3 || goals.shape(0) != L || goals.shape(1) != N || goals.shape(2) != D)
        throw py::value_error("goals: expected the shape of states " + array_shape_str(states) + ", got " + array_shape_str(goals));
    if (starts.ndim() != 2 || starts.shape(0) != L || starts.shape(1) != N)
        throw py::value_error("starts: expected shape (" + std::to_string(L) + ", " + std::to_string(N) + "), got " + array_shape_str(starts));
    if (c < 1) throw py::value_error("c: expected an integer >= 1, got " + std::to_string(c));
    if (L <= c) throw py::value_error("states: expected more than c = " + std::to_string(c) + " rows, got " + std::to_string(L));
    const int64_t T = L - c;
    py::array_t<F> intrinsic({T, N}), direction({T, N, D});
    py::array_t<int64_t> horizon({T, N});
    {
        py::gil_scoped_release nogil;
        hrlkit::feudal_terms<F>(states.data(), goals.data(), starts.data(), L, N, D, c, eps, intrinsic.mutable_data(),
                                direction.mutable_data(), horizon.mutable_data());
    }
    return py::make_tuple(intrinsic, direction, horizon);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "hrlkit native core: replay storage, prioritized sampling, SMDP returns, option targets";
    m.attr("TREE_FAN") = hrlkit::kTreeFan;  // the priority tree's fan-out (the device tree's layout follows it)

    py::class_<PyReplay>(m, "Replay")
        .def(py::init<int64_t, const Spec&, int64_t, bool, double, double, uint64_t, bool>(), py::arg("capacity"), py::arg("spec"),
             py::arg("num_options") = 0, py::arg("prioritized") = false, py::arg("alpha") = 0.6, py::arg("eps") = 1e-6,
             py::arg("seed") = 0, py::arg("prefault") = false)
        .def("add", &PyReplay::add, py::arg("fields"), py::arg("validate") = true)
        .def("sample", &PyReplay::sample, py::arg("batch_size"), py::arg("option") = -1, py::arg("beta") = 0.0)
        .def("gather", &PyReplay::gather, py::arg("indices"))
        .def("update_priorities", &PyReplay::update_priorities, py::arg("indices"), py::arg("td_errors"))
        .def("count", [](PyReplay& r, int64_t option) { return r.core().count(option); }, py::arg("option") = -1)
        .def("__len__", [](PyReplay& r) { return r.core().size(); })
        .def_property_readonly("capacity", [](PyReplay& r) { return r.core().capacity(); })
        .def_property_readonly("position", [](PyReplay& r) { return r.core().pos(); })
        .def_property_readonly("num_options", [](PyReplay& r) { return r.core().num_options(); })
        .def_property_readonly("prioritized", [](PyReplay& r) { return r.core().prioritized(); })
        .def_property_readonly("alpha", [](PyReplay& r) { return r.core().alpha(); })
        .def_property_readonly("eps", [](PyReplay& r) { return r.core().eps(); })
        .def_property_readonly("max_priority", [](PyReplay& r) { return r.core().max_priority(); })
        .def_property_readonly("nbytes", [](PyReplay& r) { return r.core().storage().bytes(); })
        .def_property_readonly("overhead_nbytes", [](PyReplay& r) { return r.core().overhead_bytes(); })
        .def("column", [](py::object self, int64_t f) { return self.cast<PyReplay&>().column(f, self); })
        .def("priorities", [](py::object self) { return self.cast<PyReplay&>().priorities(self); })
        .def("restore", &PyReplay::restore, py::arg("size"), py::arg("position"), py::arg("max_priority"), py::arg("priorities"))
        .def("rng_state", [](PyReplay& r) { return r.core().rng_state(); })
        .def("set_rng_state", [](PyReplay& r, const std::array<uint64_t, 4>& s) { r.core().set_rng_state(s); })
        .def("reseed", [](PyReplay& r, uint64_t s) { r.core().reseed(s); })
        .def("lock", &PyReplay::lock)
        .def("unlock", &PyReplay::unlock);

    // The constructor's checks of sizes and the bytes a buffer of these arguments holds, allocating
    // nothing: the device twin sizes its tensors with the host's checks and messages.
    m.def(
        "required_bytes",
        [](int64_t capacity, const Spec& spec, int64_t num_options, bool prioritized) {
            hrlkit::ReplayOptions opt;
            opt.num_options = num_options;
            opt.prioritized = prioritized;
            return hrlkit::Replay::required_bytes(capacity, make_fields(spec), opt);
        },
        py::arg("capacity"), py::arg("spec"), py::arg("num_options") = 0, py::arg("prioritized") = false);
    m.def("nstep_returns_f32", &nstep_impl<float>);
    m.def("nstep_returns_f64", &nstep_impl<double>);
    m.def("option_values_f32", &option_values_impl<float>);
    m.def("option_values_f64", &option_values_impl<double>);
    m.def("option_bootstrap_f32", &option_bootstrap_impl<float>);
    m.def("option_bootstrap_f64", &option_bootstrap_impl<double>);
    m.def("soft_option_targets_f32", &soft_option_targets_impl<float>);
    m.def("soft_option_targets_f64", &soft_option_targets_impl<double>);
    m.def("skill_rewards_f32", &skill_rewards_impl<float>);
    m.def("skill_rewards_f64", &skill_rewards_impl<double>);
    m.def("feudal_terms_f32", &feudal_terms_impl<float>);
    m.def("feudal_terms_f64", &feudal_terms_impl<double>);
}
