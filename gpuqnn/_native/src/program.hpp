// The op table of a program as the native engine reads it (built once per program by
// gpuqnn/_native/tables.py), and the kernels' entry points, compiled once per instruction set.
#pragma once

#include <cstdint>

namespace gqn {

// Op kinds: the values of gpuqnn._compile.OpKind.
enum Kind : int64_t { DENSE = 0, DIAG = 1, PERM = 2, ROT = 3, PHASE = 4 };
enum Readout : int64_t { PAULI = 0, PROBABILITY = 1 };

// Fields of one op record (int64), mirrored in tables.py (OP_FIELDS).
enum Field : int {
  F_KIND, F_TARGETS, F_SLOT, F_CVAL, F_NPOS, F_POS, F_OFF, F_DATA, F_IDATA, F_SRC, F_ISRC,
  OP_FIELDS
};

// A program's tables as the kernels read them: plain pointers (no standard-library template is
// instantiated in the per-instruction-set code; see kernels.hpp). The owner keeps the arrays.
struct Tables {
  int num_qubits = 0;
  int64_t dim = 0;
  int64_t num_ops = 0;
  int64_t num_slots = 0;
  int64_t num_outputs = 0;
  const int64_t* ops = nullptr;    // (num_ops, OP_FIELDS) records
  const int64_t* ints = nullptr;   // positions, offsets and index sources the records point into
  const double* cdata = nullptr;   // complex constants as (re, im) pairs
  int64_t readout = PAULI;
  // Pauli terms: output o = sum_t Re(coeff_t sum_b conj(psi[b ^ x_t]) psi[b] (-1)^|b & z_t|)
  int64_t num_terms = 0;
  const int64_t* xmask = nullptr;
  const int64_t* zmask = nullptr;
  const int64_t* term_output = nullptr;
  const double* coeff = nullptr;   // (T, 2) re, im
  const int64_t* index = nullptr;  // probability readout: (D,) output of each state, -1: none

  const int64_t* op(int64_t i) const { return ops + i * OP_FIELDS; }
};

// One instruction set's kernels (see kernels.hpp). Rows [0, rows) of one call.
template <typename T>
struct Kernels {
  // Outputs of every (shift block, row): out[(s * rows + b) * O + o]; the angles of row b
  // with shift_value[s] added to slot shift_slot[s] (-1: none). final: optional (rows, D)
  // final states of the unshifted rows, interleaved (re, im).
  void (*forward)(const Tables&, const double* angles, int64_t rows, const int32_t* shift_slot,
                  const double* shift_value, int64_t shifts, double* out,
                  T* final_states);
  // Adjoint derivatives by the slots whose column[slot] >= 0: out (rows, E, S) with E =
  // output_count (outputs output_first, ...), or E = 1 for a (rows, O) cotangent. final:
  // optional (rows, D) final states (then the forward sweep is skipped).
  void (*adjoint)(const Tables&, const double* angles, int64_t rows, const int64_t* column,
                  int64_t num_columns, const double* cotangent, int64_t output_first,
                  int64_t output_count, double* out, const T* final_states);
};

struct KernelSet {
  const char* name;
  Kernels<double> f64;
  Kernels<float> f32;
};

// Defined once per instruction set (isa_*.cpp).
const KernelSet& kernels_generic();
#if defined(__x86_64__) || defined(_M_X64)
const KernelSet& kernels_avx2();
const KernelSet& kernels_avx512();
#endif

}  // namespace gqn
