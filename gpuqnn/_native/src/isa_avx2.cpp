// The kernels compiled for the avx2 instruction set (flags: setup.py, NATIVE_ISAS).
#define GQN_ISA isa_avx2
#include "kernels.hpp"

namespace gqn {
const KernelSet& kernels_avx2() {
  static const KernelSet set = isa_avx2::make_kernel_set("avx2");
  return set;
}
}  // namespace gqn
