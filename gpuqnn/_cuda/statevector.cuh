// gpuqnn's batched statevector kernels.
//
// One source, built three ways:
//   - CUDA with nvcc or NVRTC (CuPy RawModule): every kernel NAME is the two extern "C"
//     `__global__` functions NAME_f32 / NAME_f64, its body templated on the real type T (float
//     for complex64 states, double for complex128);
//   - plain C++ for the host when GPUQNN_HOST is defined: the same names are extern "C"
//     functions that run the body for each block of an emulated grid,
//     with an emulated number of threads per block, so tests execute the same index arithmetic,
//     strided loops and reduction trees on the CPU.
// Nothing outside `#ifdef GPUQNN_HOST` includes a header: NVRTC has no standard library.
//
// The rules every kernel body follows, so that the host emulation is faithful:
//   - code outside GQ_EACH_THREAD / GQ_BLOCK_FOR / GQ_GRID_FOR is uniform (every thread of a
//     block computes the same values) and writes no memory;
//   - memory is written only inside those loops, and a GQ_SYNC() separates a write from any read
//     of the same location by another thread of the block;
//   - no per-thread value lives across a GQ_SYNC() (shared arrays carry values across);
//   - two thread loops ("phases") of a block always have a GQ_SYNC() between them.
// The host runs the threads of each phase one after the other, in increasing or (reverse = 1)
// decreasing order; tests run both, so a phase whose result depends on the order of its threads
// (a race inside the phase) cannot agree with the reference in both. Running phase after phase
// would hide a missing barrier between two phases, so the host build checks the last rule and
// fails the launch when a phase starts while the previous one was not closed by a GQ_SYNC().
// Running a phase's threads one after the other hides lost updates (two threads adding into
// one shared cell) and shuffles that not every lane reaches: the strict mode (gq_strict) runs
// each thread on a snapshot of shared memory, fails on two threads writing one byte, and sums
// gq_warp_add's lanes as the device does, requiring all 32.
//
// Data layout (built by gpuqnn/_cuda/tables.py; the enums below are its constants):
//   prog: int32 table. Header (GQ_HEADER ints), then one record of GQ_OP_FIELDS ints per op, then
//         the ops' index arrays, then the readout's tables. Offsets are from the table's start.
//   data: complex (T pairs) op constants: dense matrices (row-major), diagonals, permutation
//         phases, rotation coefficients -i G[j, source[j]], 0/1 phase masks.
//   rcoef: float64 (terms, 2) Pauli coefficients (re, im).
//   base: float64 (B, K) angles; shift_slot (S,) int32, shift_value (S,) float64: row
//         r = s * B + b uses angle base[b, k] + (shift_slot[s] == k ? shift_value[s] : 0).
//   psi: (R, D) complex states, row-major; out: (R, O) float64.
// Amplitude index bit q is qubit q (little-endian); targets[t] is bit t of an op's local index.

#ifndef GPUQNN_STATEVECTOR_CUH
#define GPUQNN_STATEVECTOR_CUH

#define GQ_MAX_THREADS 512

#ifdef GPUQNN_HOST
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <vector>

#define GQ_DEVICE inline
#define GQ_UNROLL
#define GQ_RESTRICT __restrict__

// The strict emulation (gq_host_launch's mode & 2): each phase runs its threads in a seeded
// random order, each thread on shared memory as it was at the phase's start plus its own writes
// (a snapshot); the bytes a thread changed are collected after it, and applied together when the
// phase ends. Two threads changing one byte is an error (a lost update on a GPU), so is a
// gq_warp_add that not all 32 lanes of the warp reach, in the same order, on the same cells.
// Only shared memory is snapshotted: global memory is read and written in place.
struct gq_lanes {
  double* cells;
  double v[32];
  unsigned arrived;
};
struct gq_strict {
  std::vector<unsigned char> snap;  // shared memory at the phase's start
  std::vector<unsigned char> next;  // ... with the writes of the threads that ran so far
  std::vector<int> owner;           // the thread that wrote each byte in this phase, or -1
  std::vector<int> calls;           // gq_warp_add calls of each thread in this phase
  std::vector<gq_lanes> sums;       // per (call, warp): the lanes' values
  unsigned long long rng;
};

// The emulated launch: which block runs now, the grid, the threads per block, their order.
struct gq_ctx {
  long long block;
  long long num_blocks;
  int num_threads;
  int reverse;
  unsigned char* smem;
  long long shared;
  gq_strict* strict;               // null: threads run in place, in increasing or reverse order
  mutable int order[GQ_MAX_THREADS];  // the phase's threads, in the order they run
  mutable int open_phase;          // a phase ran since the last GQ_SYNC()
  mutable int in_thread;           // inside a thread loop's body
  mutable int error;               // the first failure (gq_host_launch's status), or 0
};
inline void gq_fail(const gq_ctx& ctx, int status) {
  if (!ctx.error) ctx.error = status;
}
inline int gq_begin_phase(const gq_ctx& ctx) {
  if (ctx.open_phase) gq_fail(ctx, 4);
  ctx.open_phase = 1;
  const int n = ctx.num_threads;
  for (int k = 0; k < n; ++k) ctx.order[k] = ctx.reverse ? n - 1 - k : k;
  gq_strict* s = ctx.strict;
  if (s != nullptr) {
    for (int k = n - 1; k > 0; --k) {  // Fisher-Yates on an xorshift64 stream
      s->rng ^= s->rng << 13;
      s->rng ^= s->rng >> 7;
      s->rng ^= s->rng << 17;
      const int j = (int)(s->rng % (unsigned long long)(k + 1));
      const int v = ctx.order[k];
      ctx.order[k] = ctx.order[j];
      ctx.order[j] = v;
    }
    std::memcpy(s->snap.data(), ctx.smem, (size_t)ctx.shared);
    std::memcpy(s->next.data(), ctx.smem, (size_t)ctx.shared);
    std::fill(s->owner.begin(), s->owner.end(), -1);
    std::fill(s->calls.begin(), s->calls.end(), 0);
    s->sums.clear();
  }
  return 0;
}
// Strict: move the bytes thread t changed into next, and restore the snapshot for the next one.
inline void gq_strict_collect(const gq_ctx& ctx, int t) {
  gq_strict& s = *ctx.strict;
  for (long long i = 0; i < ctx.shared; i += 8) {
    const long long len = ctx.shared - i < 8 ? ctx.shared - i : 8;
    if (std::memcmp(ctx.smem + i, s.snap.data() + i, (size_t)len) == 0) continue;
    for (long long b = i; b < i + len; ++b) {
      if (ctx.smem[b] == s.snap[b]) continue;
      if (s.owner[b] >= 0 && s.owner[b] != t) gq_fail(ctx, 5);
      s.owner[b] = t;
      s.next[b] = ctx.smem[b];
      ctx.smem[b] = s.snap[b];
    }
  }
}
// Strict, at the phase's end: each warp's sums (the device's shuffle tree, added by lane 0),
// then every write becomes visible.
inline void gq_strict_commit(const gq_ctx& ctx) {
  gq_strict& s = *ctx.strict;
  for (gq_lanes& w : s.sums) {
    if (w.arrived == 0) continue;  // a warp that made fewer calls than another
    if (w.arrived != 0xffffffffu) gq_fail(ctx, 6);
    for (int o = 16; o > 0; o >>= 1) {
      double v[32];
      for (int l = 0; l < 32; ++l) v[l] = w.v[l] + w.v[l ^ o];
      std::memcpy(w.v, v, sizeof v);
    }
    const int warp = (int)(&w - s.sums.data()) % ((ctx.num_threads + 31) / 32);
    double* to = w.cells + warp;  // lane 0 adds the warp's sum
    const long long at = (long long)((unsigned char*)to - ctx.smem);
    if (at < 0 || at + 8 > ctx.shared) {
      *to += w.v[0];
      continue;
    }
    double cell;
    std::memcpy(&cell, s.next.data() + at, 8);
    cell += w.v[0];
    std::memcpy(s.next.data() + at, &cell, 8);
    for (long long b = at; b < at + 8; ++b) {
      if (s.owner[b] >= 0 && s.owner[b] != warp * 32) gq_fail(ctx, 5);
      s.owner[b] = warp * 32;
    }
  }
  std::memcpy(ctx.smem, s.next.data(), (size_t)ctx.shared);
}
// The loop condition of GQ_EACH_THREAD: whether the phase's k-th thread runs.
inline bool gq_next_thread(const gq_ctx& ctx, int k) {
  if (ctx.strict != nullptr && k > 0) gq_strict_collect(ctx, ctx.order[k - 1]);
  if (ctx.strict != nullptr && k == ctx.num_threads) gq_strict_commit(ctx);
  ctx.in_thread = k < ctx.num_threads;
  return ctx.in_thread;
}
// A barrier inside a thread loop (divergent code on a GPU) fails the launch.
inline void gq_sync(const gq_ctx& ctx) {
  if (ctx.in_thread) gq_fail(ctx, 7);
  ctx.open_phase = 0;
}
#define GQ_BLOCK ((long long)ctx.block)
#define GQ_NUM_BLOCKS ((long long)ctx.num_blocks)
#define GQ_NUM_THREADS ((long long)ctx.num_threads)
// The body runs once for every emulated thread t of the block, one thread after the other.
#define GQ_EACH_THREAD(t)                                                               \
  for (int gq_k_ = gq_begin_phase(ctx); gq_next_thread(ctx, gq_k_); ++gq_k_)           \
    for (int t = ctx.order[gq_k_], gq_once_ = 1; gq_once_; gq_once_ = 0)
#define GQ_SYNC() gq_sync(ctx)
#define GQ_UNREACHABLE() std::abort()

inline int gq_popc(unsigned long long v) { return __builtin_popcountll(v); }
inline void gq_sincos(double x, double* s, double* c) {
  *s = std::sin(x);
  *c = std::cos(x);
}
inline void gq_sincos(float x, float* s, float* c) {
  *s = std::sin(x);
  *c = std::cos(x);
}
// Add v (one value per thread) into cells[warp of thread t]: threads run one after the other
// here, so each adds its own value; on a GPU the warp's lanes are summed first. Strict: the
// lanes' values are kept, and summed as on a GPU when the phase ends (gq_strict_commit).
inline void gq_warp_add(const gq_ctx& ctx, double* cells, int t, double v) {
  if (ctx.strict == nullptr) {
    cells[t >> 5] += v;
    return;
  }
  gq_strict& s = *ctx.strict;
  const size_t warps = (size_t)(ctx.num_threads + 31) / 32;
  const size_t call = (size_t)s.calls[t]++;
  if (s.sums.size() < (call + 1) * warps) s.sums.resize((call + 1) * warps, gq_lanes{});
  gq_lanes& w = s.sums[call * warps + (size_t)(t >> 5)];
  if (w.arrived != 0 && w.cells != cells) gq_fail(ctx, 6);
  w.cells = cells;
  w.v[t & 31] = v;
  w.arrived |= 1u << (t & 31);
}

#else  // CUDA

#define GQ_DEVICE __device__ __forceinline__
#define GQ_UNROLL _Pragma("unroll")
#define GQ_RESTRICT __restrict__

struct gq_ctx {};
#define GQ_BLOCK ((long long)blockIdx.x)
#define GQ_NUM_BLOCKS ((long long)gridDim.x)
#define GQ_NUM_THREADS ((long long)blockDim.x)
// The body runs once, as this thread t. The thread index is read anew in every phase (a volatile
// read): otherwise the compiler hoists every phase's per-thread index arithmetic out of the row
// loop and keeps it live in registers (about 160 per thread in a generated kernel, see codegen.py).
GQ_DEVICE int gq_thread_index() {
  int t;
  asm volatile("mov.u32 %0, %%tid.x;" : "=r"(t));
  return t;
}
#define GQ_EACH_THREAD(t) for (int t = gq_thread_index(), gq_once_ = 1; gq_once_; gq_once_ = 0)
#define GQ_SYNC() __syncthreads()
#define GQ_UNREACHABLE() __trap()

GQ_DEVICE int gq_popc(unsigned long long v) { return __popcll(v); }
GQ_DEVICE void gq_sincos(double x, double* s, double* c) { sincos(x, s, c); }
GQ_DEVICE void gq_sincos(float x, float* s, float* c) { sincosf(x, s, c); }
// Add v (one value per thread) into cells[warp of thread t]: the warp's lanes are summed with
// shuffles, then lane 0 adds the sum. Every lane of the warp must call it.
GQ_DEVICE void gq_warp_add(const gq_ctx&, double* cells, int t, double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((t & 31) == 0) cells[t >> 5] += v;
}

#endif

// Items i in [0, n) shared by the threads of this block (thread t takes t, t + threads, ...).
#define GQ_BLOCK_FOR(i, n) \
  GQ_EACH_THREAD(gq_t_) for (long long i = gq_t_; i < (n); i += GQ_NUM_THREADS)
// Items i in [0, n) shared by all threads of the grid (grid-stride).
#define GQ_GRID_FOR(i, n)                                                          \
  GQ_EACH_THREAD(gq_t_)                                                            \
  for (long long i = GQ_BLOCK * GQ_NUM_THREADS + gq_t_; i < (n);                   \
       i += GQ_NUM_BLOCKS * GQ_NUM_THREADS)
// Items (rows) w in [0, n) handled by whole blocks (block-stride); uniform inside a block.
#define GQ_BLOCK_ITEMS(w, n) for (long long w = GQ_BLOCK; w < (n); w += GQ_NUM_BLOCKS)

// ---- table layout (mirrored by gpuqnn/_cuda/tables.py) --------------------------------------
enum gq_header {
  GQ_H_QUBITS = 0,   // n: simulated qubits, D = 2**n
  GQ_H_NUM_OPS = 1,  // ops in the program
  GQ_H_OPS = 2,      // offset of the first op record
  GQ_H_READOUT = 3,  // a gq_readout_kind
  GQ_H_OUTPUTS = 4,  // O
  GQ_H_ITEMS = 5,    // Pauli: terms; pieces: pieces
  GQ_H_TABLES = 6,   // offset of the readout's tables
  GQ_HEADER = 8
};
enum gq_field {
  GQ_F_KIND = 0,     // a gq_op_kind
  GQ_F_TARGETS = 1,  // k: number of targets
  GQ_F_SLOT = 2,     // angle slot, or -1
  GQ_F_CVAL = 3,     // required control bits, at their qubits' positions
  GQ_F_NPOS = 4,     // bits inserted to enumerate the op's items
  GQ_F_POS = 5,      // offset: the inserted bit positions, ascending
  GQ_F_TGT = 6,      // offset: the k target qubits
  GQ_F_DATA = 7,     // offset into data (complex entries)
  GQ_F_SRC = 8,      // offset: source index per local index (perm, rot), or -1
  GQ_F_OFF = 9,      // offset: amplitude offset of each of the 2**k local indices
  GQ_OP_FIELDS = 10
};
enum gq_op_kind { GQ_DENSE = 0, GQ_DIAG = 1, GQ_PERM = 2, GQ_ROT = 3, GQ_PHASE = 4 };
enum gq_readout_kind { GQ_PAULI = 0, GQ_PROB_DIRECT = 1, GQ_PROB_PIECES = 2 };
// Largest number of targets of the grouped kinds (dense, perm, rot).
#define GQ_MAX_GROUP_TARGETS 3

// ---- complex numbers on (re, im) pairs --------------------------------------------------------
template <typename T>
struct alignas(2 * sizeof(T)) gq_cplx {
  T re;
  T im;
};

template <typename T>
GQ_DEVICE gq_cplx<T> gq_make(T re, T im) {
  gq_cplx<T> z;
  z.re = re;
  z.im = im;
  return z;
}

template <typename T>
GQ_DEVICE gq_cplx<T> gq_mul(gq_cplx<T> a, gq_cplx<T> b) {
  return gq_make<T>(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re);
}

template <typename T>
GQ_DEVICE double gq_norm(gq_cplx<T> a) {
  const double re = (double)a.re;
  const double im = (double)a.im;
  return re * re + im * im;
}

// ---- ops --------------------------------------------------------------------------------------
struct gq_op {
  int kind;
  int k;
  int slot;
  int cval;
  int npos;
  int data;
  const int* pos;
  const int* tgt;
  const int* src;
  const int* off;
};

GQ_DEVICE gq_op gq_load_op(const int* prog, int index) {
  const int* f = prog + prog[GQ_H_OPS] + index * GQ_OP_FIELDS;
  gq_op op;
  op.kind = f[GQ_F_KIND];
  op.k = f[GQ_F_TARGETS];
  op.slot = f[GQ_F_SLOT];
  op.cval = f[GQ_F_CVAL];
  op.npos = f[GQ_F_NPOS];
  op.data = f[GQ_F_DATA];
  op.pos = prog + f[GQ_F_POS];
  op.tgt = prog + f[GQ_F_TGT];
  op.src = f[GQ_F_SRC] >= 0 ? prog + f[GQ_F_SRC] : prog;
  op.off = prog + f[GQ_F_OFF];
  return op;
}

// rot: (cos(theta/2), sin(theta/2)); phase: (cos theta, sin theta); constant ops: (1, 0).
template <typename T>
struct gq_factor {
  T c;
  T s;
};

// An op's factor in a row, from the (rows, slots, 2) table gq_factors wrote.
template <typename T>
GQ_DEVICE gq_factor<T> gq_op_factor(const gq_op& op, const gq_cplx<T>* GQ_RESTRICT factors,
                                    int slots, long long row) {
  gq_factor<T> f;
  f.c = (T)1;
  f.s = (T)0;
  if (op.slot < 0) return f;
  const gq_cplx<T> z = factors[(row * slots + op.slot) * 2 + (op.kind == GQ_ROT ? 0 : 1)];
  f.c = z.re;
  f.s = z.im;
  return f;
}

// Insert a zero bit at each of pos[0] < pos[1] < ... (final positions) into i.
GQ_DEVICE long long gq_spread(long long i, const int* pos, int npos) {
  for (int p = 0; p < npos; ++p) {
    const long long low = i & ((1LL << pos[p]) - 1);
    i = ((i ^ low) << 1) | low;
  }
  return i;
}

// An op's per-item constants, loaded once per op: local index -> amplitude offset, and the
// offset of each local index's source (perm, rot).
template <int K>
struct gq_offsets {
  int at[1 << K];
  int from[1 << K];
};

template <int KIND, int K>
GQ_DEVICE gq_offsets<K> gq_load_offsets(const gq_op& op) {
  gq_offsets<K> o;
  GQ_UNROLL
  for (int j = 0; j < (1 << K); ++j) {
    o.at[j] = op.off[j];
    o.from[j] = (KIND == GQ_PERM || KIND == GQ_ROT) ? op.off[op.src[j]] : op.off[j];
  }
  return o;
}

// Apply the op to one item of a row: a group of 2**k amplitudes (dense, perm, rot), or one
// amplitude (diag, phase). Items enumerate exactly the indices whose controls hold cval.
template <typename T, int KIND, int K>
GQ_DEVICE void gq_item(gq_cplx<T>* GQ_RESTRICT psi, long long item, const gq_op& op,
                       const gq_offsets<K>& o, const gq_cplx<T>* GQ_RESTRICT constants,
                       gq_factor<T> f) {
  const gq_cplx<T>* GQ_RESTRICT data = constants + op.data;
  const long long base = gq_spread(item, op.pos, op.npos) | (long long)op.cval;
  if constexpr (KIND == GQ_DIAG || KIND == GQ_PHASE) {
    int j = 0;
    for (int t = 0; t < op.k; ++t) j |= (int)((base >> op.tgt[t]) & 1) << t;
    const gq_cplx<T> d = data[j];
    if constexpr (KIND == GQ_DIAG) {
      psi[base] = gq_mul<T>(d, psi[base]);
    } else if (d.re != (T)0) {
      psi[base] = gq_mul<T>(gq_make<T>(f.c, f.s), psi[base]);
    }
  } else if constexpr (KIND == GQ_DENSE) {
    // All inputs first (registers), then one output row at a time: the rows are not unrolled,
    // so that only 2**k matrix entries are live at once (no register spills for k = 3).
    const int n = 1 << K;
    gq_cplx<T> a[1 << K];
    GQ_UNROLL
    for (int j = 0; j < n; ++j) a[j] = psi[base + o.at[j]];
    for (int i = 0; i < n; ++i) {
      T re = (T)0;
      T im = (T)0;
      GQ_UNROLL
      for (int j = 0; j < n; ++j) {
        const gq_cplx<T> m = data[i * n + j];
        re += m.re * a[j].re - m.im * a[j].im;
        im += m.re * a[j].im + m.im * a[j].re;
      }
      psi[base + op.off[i]] = gq_make<T>(re, im);
    }
  } else {  // GQ_PERM, GQ_ROT: every output reads its source before any output is written
    const int n = 1 << K;
    gq_cplx<T> out[1 << K];
    GQ_UNROLL
    for (int j = 0; j < n; ++j) {
      const gq_cplx<T> from = psi[base + o.from[j]];
      if constexpr (KIND == GQ_PERM) {
        out[j] = gq_mul<T>(data[j], from);
      } else {  // c a_j + s coeff_j a_source(j)
        const gq_cplx<T> here = psi[base + o.at[j]];
        const gq_cplx<T> b = gq_mul<T>(gq_make<T>(f.s * data[j].re, f.s * data[j].im), from);
        out[j] = gq_make<T>(f.c * here.re + b.re, f.c * here.im + b.im);
      }
    }
    GQ_UNROLL
    for (int j = 0; j < n; ++j) psi[base + o.at[j]] = out[j];
  }
}

// Call FN<T, KIND, K>(...) for the op's kind and number of targets.
#define GQ_DISPATCH(FN, T, OP, ...)                                            \
  switch ((OP).kind == GQ_DIAG || (OP).kind == GQ_PHASE ? (OP).kind * 4        \
                                                         : (OP).kind * 4 + (OP).k) { \
    case GQ_DIAG * 4: FN<T, GQ_DIAG, 0>(__VA_ARGS__); break;                   \
    case GQ_PHASE * 4: FN<T, GQ_PHASE, 0>(__VA_ARGS__); break;                 \
    case GQ_DENSE * 4 + 1: FN<T, GQ_DENSE, 1>(__VA_ARGS__); break;             \
    case GQ_DENSE * 4 + 2: FN<T, GQ_DENSE, 2>(__VA_ARGS__); break;             \
    case GQ_DENSE * 4 + 3: FN<T, GQ_DENSE, 3>(__VA_ARGS__); break;             \
    case GQ_PERM * 4 + 1: FN<T, GQ_PERM, 1>(__VA_ARGS__); break;               \
    case GQ_PERM * 4 + 2: FN<T, GQ_PERM, 2>(__VA_ARGS__); break;               \
    case GQ_PERM * 4 + 3: FN<T, GQ_PERM, 3>(__VA_ARGS__); break;               \
    case GQ_ROT * 4 + 1: FN<T, GQ_ROT, 1>(__VA_ARGS__); break;                 \
    case GQ_ROT * 4 + 2: FN<T, GQ_ROT, 2>(__VA_ARGS__); break;                 \
    case GQ_ROT * 4 + 3: FN<T, GQ_ROT, 3>(__VA_ARGS__); break;                 \
    default: GQ_UNREACHABLE();                                                 \
  }

// One op on all rows of a global (rows, 2**n) tensor (per-op kernel).
template <typename T, int KIND, int K>
GQ_DEVICE void gq_op_grid(const gq_ctx& ctx, gq_cplx<T>* GQ_RESTRICT psi, int n, long long rows,
                          const gq_op& op, const gq_cplx<T>* GQ_RESTRICT data,
                          const gq_cplx<T>* GQ_RESTRICT factors, int slots) {
  const gq_offsets<K> o = gq_load_offsets<KIND, K>(op);
  const int log_items = n - op.npos;
  const long long mask = (1LL << log_items) - 1;
  GQ_GRID_FOR(w, rows << log_items) {
    const long long row = w >> log_items;
    gq_item<T, KIND, K>(psi + (row << n), w & mask, op, o, data,
                        gq_op_factor<T>(op, factors, slots, row));
  }
}

// ---- readouts ---------------------------------------------------------------------------------
// The readouts take the state as a pointer or, in the generated kernels, as an accessor of the
// swizzled shared-memory layout (codegen.py's gqs_swizzled): psi[b] is amplitude b either way.
// sum over b = lo, lo + step, ... < hi of Re(conj(psi[b ^ x]) psi[b] coeff) (-1)^popcount(b & z)
template <typename T, typename P>
GQ_DEVICE double gq_pauli_sum(P psi, long long lo, long long hi, long long step, long long x,
                              long long z, double cre, double cim) {
  double acc = 0.0;
  for (long long b = lo; b < hi; b += step) {
    const gq_cplx<T> u = psi[b ^ x];
    const gq_cplx<T> v = psi[b];
    const double pre = (double)u.re * (double)v.re + (double)u.im * (double)v.im;
    const double pim = (double)u.re * (double)v.im - (double)u.im * (double)v.re;
    const double term = pre * cre - pim * cim;
    acc += (gq_popc((unsigned long long)(b & z)) & 1) ? -term : term;
  }
  return acc;
}

// One Pauli term over amplitudes [lo, hi) of a row, reduced by the block: per-thread partials,
// then a tree over scratch (GQ_NUM_THREADS doubles, a power of two). Leaves the sum in
// scratch[0], visible to every thread.
template <typename T, typename P>
GQ_DEVICE void gq_block_pauli(const gq_ctx& ctx, P psi, long long lo, long long hi, long long x,
                              long long z, double cre, double cim, double* GQ_RESTRICT scratch) {
  GQ_EACH_THREAD(t) {
    scratch[t] = gq_pauli_sum<T>(psi, lo + t, hi, GQ_NUM_THREADS, x, z, cre, cim);
  }
  GQ_SYNC();
  for (long long half = GQ_NUM_THREADS / 2; half > 0; half /= 2) {
    GQ_EACH_THREAD(t) {
      if (t < half) scratch[t] += scratch[t + half];
    }
    GQ_SYNC();
  }
}

// Probability of the basis states order[lo:hi] of a row.
template <typename T, typename P>
GQ_DEVICE double gq_piece_sum(P psi, const int* GQ_RESTRICT order, int lo, int hi) {
  double acc = 0.0;
  for (int p = lo; p < hi; ++p) acc += gq_norm<T>(psi[order[p]]);
  return acc;
}

GQ_DEVICE double gq_range_sum(const double* GQ_RESTRICT values, long long lo, long long hi) {
  double acc = 0.0;
  for (long long p = lo; p < hi; ++p) acc += values[p];
  return acc;
}

// The readout of one row held by this block (the generated fused kernel, codegen.py); out: the
// row's (O,) outputs.
template <typename T, typename P>
GQ_DEVICE void gq_readout_block(const gq_ctx& ctx, P psi, int n, const int* GQ_RESTRICT prog,
                                const double* GQ_RESTRICT rcoef, double* GQ_RESTRICT scratch,
                                double* GQ_RESTRICT out) {
  const int num_out = prog[GQ_H_OUTPUTS];
  const int items = prog[GQ_H_ITEMS];
  const int* tables = prog + prog[GQ_H_TABLES];
  const long long dim = 1LL << n;
  const int kind = prog[GQ_H_READOUT];
  if (kind == GQ_PAULI) {
    // tables: xmask[items], zmask[items], output[items], out_term_start[O + 1]
    GQ_EACH_THREAD(t) {
      if (t == 0) {
        for (int o = 0; o < num_out; ++o) out[o] = 0.0;
      }
    }
    GQ_SYNC();
    for (int term = 0; term < items; ++term) {
      gq_block_pauli<T>(ctx, psi, 0, dim, tables[term], tables[items + term], rcoef[2 * term],
                        rcoef[2 * term + 1], scratch);
      GQ_EACH_THREAD(t) {
        if (t == 0) out[tables[2 * items + term]] += scratch[0];
      }
      GQ_SYNC();
    }
  } else if (kind == GQ_PROB_DIRECT) {
    GQ_BLOCK_FOR(b, dim) out[b] = gq_norm<T>(psi[b]);
  } else {
    // tables: out_piece_start[O + 1], piece_start[items + 1], order[...]
    const int* piece = tables + num_out + 1;
    const int* order = piece + items + 1;
    GQ_BLOCK_FOR(w, items) scratch[w] = gq_piece_sum<T>(psi, order, piece[w], piece[w + 1]);
    GQ_SYNC();
    GQ_BLOCK_FOR(o, num_out) out[o] = gq_range_sum(scratch, tables[o], tables[o + 1]);
  }
}

// ---- kernel bodies (the per-op path; the fused kernels are generated: codegen.py) ----------
// Per-op: |0...0> in every row of psi (rows, D).
template <typename T>
GQ_DEVICE void gq_init_body(const gq_ctx& ctx, unsigned char* smem, gq_cplx<T>* GQ_RESTRICT psi,
                            int n, long long rows) {
  (void)smem;
  const long long mask = (1LL << n) - 1;
  GQ_GRID_FOR(w, rows << n) psi[w] = gq_make<T>((w & mask) == 0 ? (T)1 : (T)0, (T)0);
}

// Per-op: every row's (cos, sin) of each slot's half angle (rot) and angle (phase), once per
// call: factors[(row * slots + k) * 2 + 0 or 1], row r = s * B + b with block s's shift.
template <typename T>
GQ_DEVICE void gq_factors_body(const gq_ctx& ctx, unsigned char* smem,
                               const double* GQ_RESTRICT base, long long batch, int slots,
                               const int* GQ_RESTRICT shift_slot,
                               const double* GQ_RESTRICT shift_value, long long shifts,
                               gq_cplx<T>* GQ_RESTRICT factors) {
  (void)smem;
  GQ_GRID_FOR(w, shifts * batch * slots) {
    const long long row = w / slots;
    const int k = (int)(w - row * slots);
    const long long block = row / batch;
    double angle = base[(row - block * batch) * slots + k];
    if (shift_slot[block] == k) angle += shift_value[block];
    double s, c;
    gq_sincos(angle * 0.5, &s, &c);
    factors[2 * w] = gq_make<T>((T)c, (T)s);
    gq_sincos(angle, &s, &c);
    factors[2 * w + 1] = gq_make<T>((T)c, (T)s);
  }
}

// Per-op: op `index` on every row of psi (rows, D), its angle factors from gq_factors.
template <typename T>
GQ_DEVICE void gq_apply_body(const gq_ctx& ctx, unsigned char* smem, const int* GQ_RESTRICT prog,
                             const gq_cplx<T>* GQ_RESTRICT data, int index,
                             const gq_cplx<T>* GQ_RESTRICT factors, int slots, long long rows,
                             gq_cplx<T>* GQ_RESTRICT psi) {
  (void)smem;
  const int n = prog[GQ_H_QUBITS];
  const gq_op op = gq_load_op(prog, index);
  GQ_DISPATCH(gq_op_grid, T, op, ctx, psi, n, rows, op, data, factors, slots);
}

// Per-op Pauli readout, step 1: one block per (row, term, chunk of 2**(n - log_chunks)
// amplitudes), block-stride; partial[(row * terms + term) << log_chunks | chunk].
template <typename T>
GQ_DEVICE void gq_pauli_partial_body(const gq_ctx& ctx, unsigned char* smem,
                                     const int* GQ_RESTRICT prog,
                                     const double* GQ_RESTRICT rcoef,
                                     const gq_cplx<T>* GQ_RESTRICT psi, long long rows,
                                     int log_chunks, double* GQ_RESTRICT partial) {
  const int n = prog[GQ_H_QUBITS];
  const int terms = prog[GQ_H_ITEMS];
  const int* tables = prog + prog[GQ_H_TABLES];
  const int log_len = n - log_chunks;
  double* scratch = reinterpret_cast<double*>(smem);
  GQ_BLOCK_ITEMS(w, (rows * terms) << log_chunks) {
    const long long chunk = w & ((1LL << log_chunks) - 1);
    const long long row_term = w >> log_chunks;
    const long long row = row_term / terms;
    const int term = (int)(row_term - row * terms);
    gq_block_pauli<T>(ctx, psi + (row << n), chunk << log_len, (chunk + 1) << log_len,
                      tables[term], tables[terms + term], rcoef[2 * term], rcoef[2 * term + 1],
                      scratch);
    GQ_EACH_THREAD(t) {
      if (t == 0) partial[w] = scratch[0];
    }
    GQ_SYNC();
  }
}

// Per-op Pauli readout, step 2: out[row, o] = sum of the partials of o's terms (grid-stride).
template <typename T>
GQ_DEVICE void gq_pauli_reduce_body(const gq_ctx& ctx, unsigned char* smem,
                                    const int* GQ_RESTRICT prog,
                                    const double* GQ_RESTRICT partial, long long rows,
                                    int log_chunks, double* GQ_RESTRICT out) {
  (void)smem;
  const int num_out = prog[GQ_H_OUTPUTS];
  const int terms = prog[GQ_H_ITEMS];
  const int* start = prog + prog[GQ_H_TABLES] + 3 * terms;
  GQ_GRID_FOR(w, rows * num_out) {
    const long long row = w / num_out;
    const int o = (int)(w - row * num_out);
    out[w] = gq_range_sum(partial, (row * terms + start[o]) << log_chunks,
                          (row * terms + start[o + 1]) << log_chunks);
  }
}

// Per-op probabilities, step 1: partial[row * pieces + w] = probability of piece w.
template <typename T>
GQ_DEVICE void gq_prob_pieces_body(const gq_ctx& ctx, unsigned char* smem,
                                   const int* GQ_RESTRICT prog,
                                   const gq_cplx<T>* GQ_RESTRICT psi, long long rows,
                                   double* GQ_RESTRICT partial) {
  (void)smem;
  const int n = prog[GQ_H_QUBITS];
  const int num_out = prog[GQ_H_OUTPUTS];
  const int pieces = prog[GQ_H_ITEMS];
  const int* piece = prog + prog[GQ_H_TABLES] + num_out + 1;
  const int* order = piece + pieces + 1;
  GQ_GRID_FOR(w, rows * pieces) {
    const long long row = w / pieces;
    const int p = (int)(w - row * pieces);
    partial[w] = gq_piece_sum<T>(psi + (row << n), order, piece[p], piece[p + 1]);
  }
}

// Per-op probabilities, step 2: out[row, o] = sum of o's pieces.
template <typename T>
GQ_DEVICE void gq_prob_reduce_body(const gq_ctx& ctx, unsigned char* smem,
                                   const int* GQ_RESTRICT prog,
                                   const double* GQ_RESTRICT partial, long long rows,
                                   double* GQ_RESTRICT out) {
  (void)smem;
  const int num_out = prog[GQ_H_OUTPUTS];
  const int pieces = prog[GQ_H_ITEMS];
  const int* out_piece = prog + prog[GQ_H_TABLES];
  GQ_GRID_FOR(w, rows * num_out) {
    const long long row = w / num_out;
    const int o = (int)(w - row * num_out);
    out[w] = gq_range_sum(partial, row * pieces + out_piece[o], row * pieces + out_piece[o + 1]);
  }
}

// Per-op probabilities when every basis state is its own output: out = |psi|^2.
template <typename T>
GQ_DEVICE void gq_prob_direct_body(const gq_ctx& ctx, unsigned char* smem,
                                   const int* GQ_RESTRICT prog,
                                   const gq_cplx<T>* GQ_RESTRICT psi, long long rows,
                                   double* GQ_RESTRICT out) {
  (void)smem;
  GQ_GRID_FOR(w, rows << prog[GQ_H_QUBITS]) out[w] = gq_norm<T>(psi[w]);
}

// ---- entry points -----------------------------------------------------------------------------
#define GQ_INIT_PARAMS(T) gq_cplx<T> *GQ_RESTRICT psi, int n, long long rows
#define GQ_FACTORS_PARAMS(T)                                                               \
  const double *GQ_RESTRICT base, long long batch, int slots,                              \
      const int *GQ_RESTRICT shift_slot, const double *GQ_RESTRICT shift_value,            \
      long long shifts, gq_cplx<T> *GQ_RESTRICT factors
#define GQ_APPLY_PARAMS(T)                                                                 \
  const int *GQ_RESTRICT prog, const gq_cplx<T> *GQ_RESTRICT data, int index,              \
      const gq_cplx<T> *GQ_RESTRICT factors, int slots, long long rows,                    \
      gq_cplx<T> *GQ_RESTRICT psi
#define GQ_PAULI_PARTIAL_PARAMS(T)                                                         \
  const int *GQ_RESTRICT prog, const double *GQ_RESTRICT rcoef,                            \
      const gq_cplx<T> *GQ_RESTRICT psi, long long rows, int log_chunks,                   \
      double *GQ_RESTRICT partial
#define GQ_PAULI_REDUCE_PARAMS(T)                                                          \
  const int *GQ_RESTRICT prog, const double *GQ_RESTRICT partial, long long rows,          \
      int log_chunks, double *GQ_RESTRICT out
#define GQ_PROB_PIECES_PARAMS(T)                                                           \
  const int *GQ_RESTRICT prog, const gq_cplx<T> *GQ_RESTRICT psi, long long rows,          \
      double *GQ_RESTRICT partial
#define GQ_PROB_REDUCE_PARAMS(T)                                                           \
  const int *GQ_RESTRICT prog, const double *GQ_RESTRICT partial, long long rows,          \
      double *GQ_RESTRICT out
#define GQ_PROB_DIRECT_PARAMS(T)                                                           \
  const int *GQ_RESTRICT prog, const gq_cplx<T> *GQ_RESTRICT psi, long long rows,          \
      double *GQ_RESTRICT out

#ifdef GPUQNN_HOST

// Run body(ctx, smem) for every block of the emulated grid, each with fresh shared memory
// filled with 0xFF (NaN as floats), and a guard after it that must stay untouched. mode: bit 0
// runs each phase's threads in decreasing order; bit 1 the strict emulation (gq_strict), its
// thread orders seeded by mode >> 2.
// Returns 0, or 1 for a bad launch shape, 2 when out of memory, 3 when a block wrote past its
// shared memory, 4 when two phases of a block had no GQ_SYNC() between them, 5 when two threads
// of a phase wrote the same shared-memory byte, 6 when a gq_warp_add was not reached by all 32
// lanes of a warp (both strict only), 7 for a GQ_SYNC() inside a thread loop.
template <typename F>
int gq_host_launch(long long grid, int block, long long shared, int mode, F body) {
  if (grid < 1 || block < 1 || block > GQ_MAX_THREADS || (block & (block - 1)) != 0 ||
      shared < 0) {
    return 1;
  }
  const long long guard = 256;
  const long long bytes = (shared + guard + 63) / 64 * 64;
  unsigned char* smem = static_cast<unsigned char*>(std::aligned_alloc(64, (size_t)bytes));
  if (smem == nullptr) return 2;
  gq_strict strict;
  gq_ctx ctx;
  ctx.num_blocks = grid;
  ctx.num_threads = block;
  ctx.reverse = mode & 1;
  ctx.smem = smem;
  ctx.shared = shared;
  ctx.strict = (mode & 2) ? &strict : nullptr;
  if (mode & 2) {
    strict.snap.resize((size_t)shared);
    strict.next.resize((size_t)shared);
    strict.owner.resize((size_t)shared);
    strict.calls.resize((size_t)block);
    strict.rng = 0x9E3779B97F4A7C15ull * (unsigned long long)((mode >> 2) + 1);
  }
  int status = 0;
  for (ctx.block = 0; ctx.block < grid && status == 0; ++ctx.block) {
    std::memset(smem, 0xFF, (size_t)shared);
    std::memset(smem + shared, 0xA5, (size_t)(bytes - shared));
    ctx.open_phase = 0;
    ctx.in_thread = 0;
    ctx.error = 0;
    body(ctx, smem);
    for (long long i = shared; i < bytes; ++i) {
      if (smem[i] != 0xA5) status = 3;
    }
    if (status == 0) status = ctx.error;
  }
  std::free(smem);
  return status;
}

#define GQ_HOST_ENTRY(NAME, SUFFIX, T, PARAMS, ...)                                        \
  extern "C" int NAME##_##SUFFIX(PARAMS(T), long long grid, int block, long long shared,  \
                                 int mode) {                                              \
    return gq_host_launch(grid, block, shared, mode,                                      \
                          [&](const gq_ctx& ctx, unsigned char* smem) {                   \
                            NAME##_body<T>(ctx, smem, __VA_ARGS__);                       \
                          });                                                             \
  }
#define GQ_KERNEL(NAME, PARAMS, ...)                       \
  GQ_HOST_ENTRY(NAME, f32, float, PARAMS, __VA_ARGS__)     \
  GQ_HOST_ENTRY(NAME, f64, double, PARAMS, __VA_ARGS__)

#else  // CUDA

// extern "C" entry points with the host build's names (NAME_f32, NAME_f64): a module of plain
// names needs no name expressions, so CuPy caches its binary on disk.
#define GQ_DEVICE_ENTRY(NAME, SUFFIX, T, PARAMS, ...)                                   \
  extern "C" __global__ void __launch_bounds__(GQ_MAX_THREADS) NAME##_##SUFFIX(PARAMS(T)) { \
    extern __shared__ __align__(16) unsigned char gq_smem[];                            \
    NAME##_body<T>(gq_ctx(), gq_smem, __VA_ARGS__);                                     \
  }
#define GQ_KERNEL(NAME, PARAMS, ...)                         \
  GQ_DEVICE_ENTRY(NAME, f32, float, PARAMS, __VA_ARGS__)     \
  GQ_DEVICE_ENTRY(NAME, f64, double, PARAMS, __VA_ARGS__)

#endif

// A specialised module (gpuqnn/_cuda/codegen.py) includes this source for its helpers and defines
// GQ_SPECIALISED: it instantiates none of the generic kernels.
#ifndef GQ_SPECIALISED
GQ_KERNEL(gq_init, GQ_INIT_PARAMS, psi, n, rows)
GQ_KERNEL(gq_factors, GQ_FACTORS_PARAMS, base, batch, slots, shift_slot, shift_value, shifts,
          factors)
GQ_KERNEL(gq_apply, GQ_APPLY_PARAMS, prog, data, index, factors, slots, rows, psi)
GQ_KERNEL(gq_pauli_partial, GQ_PAULI_PARTIAL_PARAMS, prog, rcoef, psi, rows, log_chunks, partial)
GQ_KERNEL(gq_pauli_reduce, GQ_PAULI_REDUCE_PARAMS, prog, partial, rows, log_chunks, out)
GQ_KERNEL(gq_prob_pieces, GQ_PROB_PIECES_PARAMS, prog, psi, rows, partial)
GQ_KERNEL(gq_prob_reduce, GQ_PROB_REDUCE_PARAMS, prog, partial, rows, out)
GQ_KERNEL(gq_prob_direct, GQ_PROB_DIRECT_PARAMS, prog, psi, rows, out)
#endif  // GQ_SPECIALISED

#endif  // GPUQNN_STATEVECTOR_CUH
