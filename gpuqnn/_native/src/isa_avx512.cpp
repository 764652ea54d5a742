// The kernels compiled for the avx512 instruction set (flags: setup.py, NATIVE_ISAS).
#define GQN_ISA isa_avx512
#include "kernels.hpp"

namespace gqn {
const KernelSet& kernels_avx512() {
  static const KernelSet set = isa_avx512::make_kernel_set("avx512");
  return set;
}
}  // namespace gqn
