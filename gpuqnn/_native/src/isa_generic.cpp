// The kernels compiled for the generic instruction set (flags: setup.py, NATIVE_ISAS).
#define GQN_ISA isa_generic
#include "kernels.hpp"

namespace gqn {
const KernelSet& kernels_generic() {
  static const KernelSet set = isa_generic::make_kernel_set("generic");
  return set;
}
}  // namespace gqn
