// gpuqnn._native._core: the native engine's Python module (pybind11). A NativeProgram owns a
// program's op table and readout tables and runs chunks of rows on the kernels of one
// instruction set, chosen when it is built (the best this CPU supports, unless asked).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "program.hpp"

namespace py = pybind11;
using gqn::KernelSet;
using gqn::Tables;

namespace {

using IntArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using RealArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

std::vector<const KernelSet*> supported_sets() {
  std::vector<const KernelSet*> sets{&gqn::kernels_generic()};
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
  if (avx2) sets.push_back(&gqn::kernels_avx2());
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512cd")) {
    sets.push_back(&gqn::kernels_avx512());
  }
#endif
  return sets;
}

std::vector<std::string> supported_names() {
  std::vector<std::string> names;
  for (const KernelSet* set : supported_sets()) names.emplace_back(set->name);
  return names;
}

const KernelSet& choose(const std::string& isa) {
  const auto sets = supported_sets();
  if (isa == "auto") return *sets.back();
  for (const KernelSet* set : sets) {
    if (isa == set->name) return *set;
  }
  std::string names;
  for (const KernelSet* set : sets) names += std::string(names.empty() ? "" : ", ") + set->name;
  throw std::invalid_argument("isa must be 'auto' or one this CPU runs (" + names + "), got '" +
                              isa + "'");
}

template <typename A>
std::vector<typename A::value_type> copy(const A& array) {
  const auto* data = array.data();
  return std::vector<typename A::value_type>(data, data + array.size());
}

void expect(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

void expect_shape(const py::array& array, const std::vector<py::ssize_t>& shape,
                  const char* name) {
  bool ok = array.ndim() == py::ssize_t(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = array.shape(i) == shape[i];
  if (!ok) {
    std::string want = "(", got = "(";
    for (auto s : shape) want += std::to_string(s) + ",";
    for (py::ssize_t i = 0; i < array.ndim(); ++i) got += std::to_string(array.shape(i)) + ",";
    throw std::invalid_argument(std::string(name) + " must have shape " + want + ") , got " +
                                got + ")");
  }
}

class NativeProgram {
 public:
  NativeProgram(int num_qubits, int64_t num_slots, int64_t num_outputs, const IntArray& ops,
                const IntArray& ints, const RealArray& cdata, int64_t readout,
                const IntArray& xmask, const IntArray& zmask, const IntArray& term_output,
                const RealArray& coeff, const IntArray& index, const std::string& isa)
      : kernels_(&choose(isa)),
        ops_(copy(ops)),
        ints_(copy(ints)),
        cdata_(copy(cdata)),
        xmask_(copy(xmask)),
        zmask_(copy(zmask)),
        term_output_(copy(term_output)),
        coeff_(copy(coeff)),
        index_(copy(index)) {
    expect(num_qubits >= 0 && num_qubits <= 40, "num_qubits must be in [0, 40]");
    expect(ops.ndim() == 2 && ops.shape(1) == gqn::OP_FIELDS, "ops must be (N, OP_FIELDS)");
    expect(xmask.size() == zmask.size() && xmask.size() == term_output.size() &&
               coeff.size() == 2 * xmask.size(),
           "Pauli term tables must have matching lengths");
    t_.num_qubits = num_qubits;
    t_.dim = int64_t(1) << num_qubits;
    t_.num_ops = ops.shape(0);
    t_.num_slots = num_slots;
    t_.num_outputs = num_outputs;
    t_.ops = ops_.data();
    t_.ints = ints_.data();
    t_.cdata = cdata_.data();
    t_.readout = readout;
    t_.num_terms = int64_t(xmask_.size());
    t_.xmask = xmask_.data();
    t_.zmask = zmask_.data();
    t_.term_output = term_output_.data();
    t_.coeff = coeff_.data();
    expect(readout != gqn::PROBABILITY || int64_t(index_.size()) == t_.dim,
           "a probability readout needs a (D,) index table");
    t_.index = index_.data();
  }

  std::string isa() const { return kernels_->name; }

  void forward(const RealArray& angles, const py::array_t<int32_t>& shift_slot,
               const RealArray& shift_value, py::array_t<double> out, py::object final_states,
               bool single) {
    const int64_t rows = angles.ndim() == 2 ? angles.shape(0) : -1;
    expect_shape(angles, {rows, t_.num_slots}, "angles");
    const int64_t shifts = shift_slot.size();
    expect_shape(shift_value, {shifts}, "shift_value");
    expect_shape(out, {shifts * rows, t_.num_outputs}, "out");
    expect(out.writeable() && (out.flags() & py::array::c_style), "out must be C-contiguous");
    void* final_ptr = final_pointer(final_states, rows, single);
    const double* a = angles.data();
    const int32_t* ss = shift_slot.data();
    const double* sv = shift_value.data();
    double* o = out.mutable_data();
    py::gil_scoped_release release;
    if (single) {
      kernels_->f32.forward(t_, a, rows, ss, sv, shifts, o, static_cast<float*>(final_ptr));
    } else {
      kernels_->f64.forward(t_, a, rows, ss, sv, shifts, o, static_cast<double*>(final_ptr));
    }
  }

  void adjoint(const RealArray& angles, const IntArray& column, int64_t num_columns,
               py::object cotangent, int64_t output_first, int64_t output_count,
               py::array_t<double> out, py::object final_states, bool single) {
    const int64_t rows = angles.ndim() == 2 ? angles.shape(0) : -1;
    expect_shape(angles, {rows, t_.num_slots}, "angles");
    expect_shape(column, {t_.num_slots}, "column");
    RealArray cot;
    const double* cot_ptr = nullptr;
    if (!cotangent.is_none()) {
      cot = RealArray::ensure(cotangent);
      expect(bool(cot), "cotangent must be a float64 array");
      expect_shape(cot, {rows, t_.num_outputs}, "cotangent");
      cot_ptr = cot.data();
    }
    expect(output_first >= 0 && output_count >= 1 &&
               output_first + output_count <= t_.num_outputs,
           "outputs [output_first, output_first + output_count) must lie in [0, O)");
    const int64_t states = cot_ptr ? 1 : output_count;
    expect_shape(out, {rows, states, num_columns}, "out");
    expect(out.writeable() && (out.flags() & py::array::c_style), "out must be C-contiguous");
    const int64_t* col = column.data();
    for (int64_t k = 0; k < t_.num_slots; ++k) {
      expect(col[k] < num_columns, "column entries must be below num_columns");
    }
    void* final_ptr = final_pointer(final_states, rows, single);
    const double* a = angles.data();
    double* o = out.mutable_data();
    py::gil_scoped_release release;
    if (single) {
      kernels_->f32.adjoint(t_, a, rows, col, num_columns, cot_ptr, output_first, output_count,
                            o, static_cast<const float*>(final_ptr));
    } else {
      kernels_->f64.adjoint(t_, a, rows, col, num_columns, cot_ptr, output_first, output_count,
                            o, static_cast<const double*>(final_ptr));
    }
  }

 private:
  void* final_pointer(py::object final_states, int64_t rows, bool single) {
    if (final_states.is_none()) return nullptr;
    py::array array = py::array::ensure(final_states);
    expect(bool(array), "final_states must be an array");
    const bool dtype_ok = single ? array.dtype().is(py::dtype::of<std::complex<float>>())
                                 : array.dtype().is(py::dtype::of<std::complex<double>>());
    expect(dtype_ok, single ? "final_states must be complex64" : "final_states must be complex128");
    expect_shape(array, {rows, t_.dim}, "final_states");
    expect((array.flags() & py::array::c_style) && array.writeable(),
           "final_states must be a writeable C-contiguous array");
    return array.mutable_data();
  }

  const KernelSet* kernels_;
  std::vector<int64_t> ops_, ints_;
  std::vector<double> cdata_;
  std::vector<int64_t> xmask_, zmask_, term_output_;
  std::vector<double> coeff_;
  std::vector<int64_t> index_;
  Tables t_;
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "gpuqnn's native CPU engine: a generic interpreter over a program's op table";
  m.attr("OP_FIELDS") = int(gqn::OP_FIELDS);
  m.def("isas", &supported_names,
        "The instruction sets this CPU runs, in increasing preference (the last is 'auto').");
  py::class_<NativeProgram>(m, "NativeProgram")
      .def(py::init<int, int64_t, int64_t, const IntArray&, const IntArray&, const RealArray&,
                    int64_t, const IntArray&, const IntArray&, const IntArray&, const RealArray&,
                    const IntArray&, const std::string&>(),
           py::arg("num_qubits"), py::arg("num_slots"), py::arg("num_outputs"), py::arg("ops"),
           py::arg("ints"), py::arg("cdata"), py::arg("readout"), py::arg("xmask"),
           py::arg("zmask"), py::arg("term_output"), py::arg("coeff"), py::arg("index"),
           py::arg("isa") = "auto")
      .def_property_readonly("isa", &NativeProgram::isa)
      .def("forward", &NativeProgram::forward, py::arg("angles"), py::arg("shift_slot"),
           py::arg("shift_value"), py::arg("out"), py::arg("final_states"), py::arg("single"))
      .def("adjoint", &NativeProgram::adjoint, py::arg("angles"), py::arg("column"),
           py::arg("num_columns"), py::arg("cotangent"), py::arg("output_first"),
           py::arg("output_count"), py::arg("out"),
           py::arg("final_states"), py::arg("single"));
}
