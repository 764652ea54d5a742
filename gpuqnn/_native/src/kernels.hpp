// The native engine's kernels: a generic interpreter over a program's op table. Rows run in
// groups of W (one row per SIMD lane): amplitude i of lane l is at [i * W + l] of a group's
// state (real and imaginary parts apart), so every op, whatever its target qubits, is a loop
// over W contiguous lanes that the compiler vectorises for the instruction set it compiles for.
// A group's states stay in cache for its whole program. Included once per instruction set by
// isa_*.cpp, each compiled with its own flags, inside namespace GQN_ISA.
//
// A row: |0...0>, every op of the table applied in order, then the readout. The adjoint method
// keeps one state psi and E adjoint states lam (E = O outputs, or one for a cotangent); the
// reverse sweep adds 2 Re <lam| dU psi_before> for each differentiated op (from the states after
// it: one complex product per amplitude), then un-applies the op from psi and every lam.
#pragma once

#include <cmath>
#include <new>
#include <cstdint>

#include "program.hpp"

#ifndef GQN_ISA
#error "define GQN_ISA (the instruction set's namespace) before including kernels.hpp"
#endif

namespace gqn {
namespace GQN_ISA {

constexpr int W = 8;  // rows per group (SIMD lanes)

// Every loop over a group's lanes is independent per lane: tell the compiler (-fopenmp-simd, no
// OpenMP run time), which otherwise keeps scalar code where it cannot prove that the state's
// real and imaginary parts and the per-lane constants do not overlap.
#define GQN_LANES _Pragma("omp simd")

// No standard-library templates below: each instruction set's copy of a template would be one
// symbol for the linker, which keeps one of them (an AVX-512 one could run on any CPU).
template <typename T>
inline void fill(T* first, int64_t count, T value) {
  for (int64_t i = 0; i < count; ++i) first[i] = value;
}

template <typename T>
struct Buffer {  // a call's scratch, owned, aligned for the widest vectors
  T* data;
  explicit Buffer(int64_t size) : data(static_cast<T*>(::operator new[](
                                      sizeof(T) * size + 64, std::align_val_t(64)))) {}
  ~Buffer() { ::operator delete[](data, std::align_val_t(64)); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

template <typename T>
struct State {
  T* re;
  T* im;
};

// Per-lane cos and sin of an op's angle (theta / 2 for a rotation).
template <typename T>
struct Lanes {
  T c[W], s[W];
};

// The sub-blocks an op acts on: ``outer`` blocks whose controls match (cval) and whose target
// bits are zero, each a contiguous run of ``run`` indices below the lowest target or control.
// The blocks' first indices are the numbers with zeros at the op's positions and below the run,
// enumerated by b -> ((b | skip) + 1) & ~skip (no per-block bit insertion).
struct Walk {
  int64_t skip, cval, outer, run;
  Walk(const Tables& p, const int64_t* rec) : cval(rec[F_CVAL]) {
    const int64_t* pos = p.ints + rec[F_POS];
    const int64_t npos = rec[F_NPOS];
    const int64_t low = npos ? pos[0] : p.num_qubits;
    run = int64_t(1) << low;
    outer = (p.dim >> npos) >> low;
    int64_t mask = 0;
    for (int64_t i = 0; i < npos; ++i) mask |= int64_t(1) << pos[i];
    skip = mask | (run - 1);
  }
  int64_t next(int64_t b) const { return ((b | skip) + 1) & ~skip; }
};

// Calls f(i) with i = W * (first index of a group of amplitudes the op mixes), for every group.
template <typename F>
inline void for_groups(const Walk& w, const F& f) {
  int64_t free = 0;
  for (int64_t u = 0; u < w.outer; ++u, free = w.next(free)) {
    const int64_t b = free | w.cval;
    for (int64_t r = 0; r < w.run; ++r) f((b + r) * W);
  }
}

// ---- grouped ops: dense, permutation, rotation on K <= 3 targets ------------------------------
template <int K, typename T>
inline void dense(const Tables& p, const int64_t* rec, State<T> st, bool inverse) {
  constexpr int M = 1 << K;
  const double* m = p.cdata + 2 * rec[inverse ? F_IDATA : F_DATA];
  const int64_t* offsets = p.ints + rec[F_OFF];
  T mr[M * M], mi[M * M];
  bool nonzero[M * M];
  bool real = true;  // a real matrix (H, fused Hadamard layers): half the multiplications
  int64_t off[M];
  for (int j = 0; j < M * M; ++j) {
    mr[j] = T(m[2 * j]);
    mi[j] = T(m[2 * j + 1]);
    nonzero[j] = m[2 * j] != 0 || m[2 * j + 1] != 0;
    real = real && m[2 * j + 1] == 0;
  }
  for (int j = 0; j < M; ++j) off[j] = offsets[j] * W;
  T* __restrict re = st.re;
  T* __restrict im = st.im;
  for_groups(Walk(p, rec), [&](int64_t i) {
    alignas(64) T xr[M][W], xi[M][W];
    for (int j = 0; j < M; ++j) {
      GQN_LANES
      for (int l = 0; l < W; ++l) {
        xr[j][l] = re[i + off[j] + l];
        xi[j][l] = im[i + off[j] + l];
      }
    }
    for (int j = 0; j < M; ++j) {
      alignas(64) T ar[W] = {}, ai[W] = {};
      for (int q = 0; q < M; ++q) {
        if (!nonzero[j * M + q]) continue;
        const T br = mr[j * M + q], bi = mi[j * M + q];
        if (real) {
          GQN_LANES
          for (int l = 0; l < W; ++l) {
            ar[l] += br * xr[q][l];
            ai[l] += br * xi[q][l];
          }
        } else {
          GQN_LANES
          for (int l = 0; l < W; ++l) {
            ar[l] += br * xr[q][l] - bi * xi[q][l];
            ai[l] += br * xi[q][l] + bi * xr[q][l];
          }
        }
      }
      GQN_LANES
      for (int l = 0; l < W; ++l) {
        re[i + off[j] + l] = ar[l];
        im[i + off[j] + l] = ai[l];
      }
    }
  });
}

template <int K, typename T>
inline void perm(const Tables& p, const int64_t* rec, State<T> st, bool inverse) {
  constexpr int M = 1 << K;
  const double* ph = p.cdata + 2 * rec[inverse ? F_IDATA : F_DATA];
  const int64_t* source = p.ints + rec[inverse ? F_ISRC : F_SRC];
  const int64_t* offsets = p.ints + rec[F_OFF];
  T pr[M], pi[M];
  int src[M];
  int64_t off[M];
  for (int j = 0; j < M; ++j) {
    pr[j] = T(ph[2 * j]);
    pi[j] = T(ph[2 * j + 1]);
    src[j] = int(source[j]);
    off[j] = offsets[j] * W;
  }
  T* __restrict re = st.re;
  T* __restrict im = st.im;
  for_groups(Walk(p, rec), [&](int64_t i) {
    alignas(64) T xr[M][W], xi[M][W];
    for (int j = 0; j < M; ++j) {
      GQN_LANES
      for (int l = 0; l < W; ++l) {
        xr[j][l] = re[i + off[j] + l];
        xi[j][l] = im[i + off[j] + l];
      }
    }
    for (int j = 0; j < M; ++j) {
      const T* ar = xr[src[j]];
      const T* ai = xi[src[j]];
      GQN_LANES
      for (int l = 0; l < W; ++l) {
        re[i + off[j] + l] = pr[j] * ar[l] - pi[j] * ai[l];
        im[i + off[j] + l] = pr[j] * ai[l] + pi[j] * ar[l];
      }
    }
  });
}

// exp(-i theta/2 G) = cos(theta/2) I + sin(theta/2) (-i G); coefficients are -i G[j, src[j]].
// ``a`` holds cos and sin of theta/2 per lane (sin negated to un-apply).
template <int K, typename T>
inline void rot(const Tables& p, const int64_t* rec, State<T> st, const Lanes<T>& a) {
  constexpr int M = 1 << K;
  const double* coef = p.cdata + 2 * rec[F_DATA];
  const int64_t* source = p.ints + rec[F_SRC];
  const int64_t* offsets = p.ints + rec[F_OFF];
  T gr[M], gi[M];
  int src[M];
  int64_t off[M];
  bool real = true, imaginary = true;
  for (int j = 0; j < M; ++j) {
    gr[j] = T(coef[2 * j]);
    gi[j] = T(coef[2 * j + 1]);
    real = real && coef[2 * j + 1] == 0;
    imaginary = imaginary && coef[2 * j] == 0;
    src[j] = int(source[j]);
    off[j] = offsets[j] * W;
  }
  const int kind = real ? 1 : imaginary ? 2 : 0;
  T* __restrict re = st.re;
  T* __restrict im = st.im;
  for_groups(Walk(p, rec), [&](int64_t i) {
    alignas(64) T xr[M][W], xi[M][W];
    for (int j = 0; j < M; ++j) {
      GQN_LANES
      for (int l = 0; l < W; ++l) {
        xr[j][l] = re[i + off[j] + l];
        xi[j][l] = im[i + off[j] + l];
      }
    }
    for (int j = 0; j < M; ++j) {
      const T* ar = xr[src[j]];
      const T* ai = xi[src[j]];
      if (kind == 1) {  // real coefficients (ry): y = g x
        GQN_LANES
        for (int l = 0; l < W; ++l) {
          re[i + off[j] + l] = a.c[l] * xr[j][l] + a.s[l] * (gr[j] * ar[l]);
          im[i + off[j] + l] = a.c[l] * xi[j][l] + a.s[l] * (gr[j] * ai[l]);
        }
      } else if (kind == 2) {  // imaginary coefficients (rx, rz, rzz): y = i g x
        GQN_LANES
        for (int l = 0; l < W; ++l) {
          re[i + off[j] + l] = a.c[l] * xr[j][l] - a.s[l] * (gi[j] * ai[l]);
          im[i + off[j] + l] = a.c[l] * xi[j][l] + a.s[l] * (gi[j] * ar[l]);
        }
      } else {
        GQN_LANES
        for (int l = 0; l < W; ++l) {
          const T yr = gr[j] * ar[l] - gi[j] * ai[l], yi = gr[j] * ai[l] + gi[j] * ar[l];
          re[i + off[j] + l] = a.c[l] * xr[j][l] + a.s[l] * yr;
          im[i + off[j] + l] = a.c[l] * xi[j][l] + a.s[l] * yi;
        }
      }
    }
  });
}

// d/dtheta of a rotation from the state AFTER it: dU psi_before = (-i G / 2) psi_after (G
// commutes with U), so 2 Re <lam| dU psi_before> = Re <lam| (-i G) psi_after>, with
// (-i G psi)[j] = coef[j] psi[src[j]]: one complex product per amplitude, no angle. Adds it per
// lane to g.
template <int K, typename T>
inline void rot_grad(const Tables& p, const int64_t* rec, State<T> psi, State<T> lam, double* g) {
  constexpr int M = 1 << K;
  const double* coef = p.cdata + 2 * rec[F_DATA];
  const int64_t* source = p.ints + rec[F_SRC];
  const int64_t* offsets = p.ints + rec[F_OFF];
  int64_t off[M], soff[M];
  T gr[M], gi[M];
  for (int j = 0; j < M; ++j) {
    off[j] = offsets[j] * W;
    soff[j] = offsets[source[j]] * W;
    gr[j] = T(coef[2 * j]);
    gi[j] = T(coef[2 * j + 1]);
  }
  alignas(64) T acc[W] = {};
  const T* __restrict pr = psi.re;
  const T* __restrict pi = psi.im;
  const T* __restrict lr = lam.re;
  const T* __restrict li = lam.im;
  for_groups(Walk(p, rec), [&](int64_t i) {
    for (int j = 0; j < M; ++j) {
      const int64_t t = i + off[j], q = i + soff[j];
      GQN_LANES
      for (int l = 0; l < W; ++l) {
        const T dr = gr[j] * pr[q + l] - gi[j] * pi[q + l];
        const T di = gr[j] * pi[q + l] + gi[j] * pr[q + l];
        acc[l] += lr[t + l] * dr + li[t + l] * di;  // Re(conj(lam) d)
      }
    }
  });
  for (int l = 0; l < W; ++l) g[l] += double(acc[l]);
}

// ---- diagonal ops: constant diagonals and phases, any number of targets ----------------------
// A constant diagonal (phase null) multiplies entry j of each group by d[j]; a phase op
// multiplies its masked entries by exp(i theta) per lane (``phase``: cos, sin; sin negated to
// un-apply).
template <typename T>
inline void diagonal(const Tables& p, const int64_t* rec, State<T> st, bool inverse,
                     const Lanes<T>* phase) {
  const Walk w(p, rec);
  const int64_t M = int64_t(1) << rec[F_TARGETS];
  const int64_t* off = p.ints + rec[F_OFF];
  const double* d = p.cdata + 2 * rec[inverse ? F_IDATA : F_DATA];
  T* __restrict re = st.re;
  T* __restrict im = st.im;
  for (int64_t j = 0; j < M; ++j) {
    alignas(64) T fr[W], fi[W];
    if (phase != nullptr) {
      if (d[2 * j] == 0) continue;
      GQN_LANES
      for (int l = 0; l < W; ++l) {
        fr[l] = phase->c[l];
        fi[l] = phase->s[l];
      }
    } else {
      if (d[2 * j] == 1 && d[2 * j + 1] == 0) continue;
      GQN_LANES
      for (int l = 0; l < W; ++l) {
        fr[l] = T(d[2 * j]);
        fi[l] = T(d[2 * j + 1]);
      }
    }
    const int64_t shift = off[j] * W;
    for_groups(w, [&](int64_t i) {
      GQN_LANES
      for (int l = 0; l < W; ++l) {
        const T xr = re[i + shift + l], xi = im[i + shift + l];
        re[i + shift + l] = fr[l] * xr - fi[l] * xi;
        im[i + shift + l] = fr[l] * xi + fi[l] * xr;
      }
    });
  }
}

// d/dtheta of exp(i theta) on the masked entries, from the state AFTER it: dU psi_before =
// i P psi_after, so 2 Re <lam| dU psi_before> = -2 Im sum_masked conj(lam) psi_after. Adds it
// per lane to g.
template <typename T>
inline void phase_grad(const Tables& p, const int64_t* rec, State<T> psi, State<T> lam,
                       double* g) {
  const Walk w(p, rec);
  const int64_t M = int64_t(1) << rec[F_TARGETS];
  const int64_t* off = p.ints + rec[F_OFF];
  const double* d = p.cdata + 2 * rec[F_DATA];
  const T* __restrict pr = psi.re;
  const T* __restrict pi = psi.im;
  const T* __restrict lr = lam.re;
  const T* __restrict li = lam.im;
  alignas(64) T zi[W] = {};
  for (int64_t j = 0; j < M; ++j) {
    if (d[2 * j] == 0) continue;
    const int64_t shift = off[j] * W;
    for_groups(w, [&](int64_t i) {
      const int64_t t = i + shift;
      GQN_LANES
      for (int l = 0; l < W; ++l) zi[l] += lr[t + l] * pi[t + l] - li[t + l] * pr[t + l];
    });
  }
  for (int l = 0; l < W; ++l) g[l] += -2 * double(zi[l]);
}

// ---- one op ----------------------------------------------------------------------------------
// cos and sin (of theta / 2 for a rotation) per lane; theta: (K, W) angles of the group.
template <typename T>
inline void angle_of(const int64_t* rec, const double* theta, Lanes<T>& a) {
  const int64_t slot = rec[F_SLOT];
  const double scale = rec[F_KIND] == ROT ? 0.5 : 1.0;
  GQN_LANES
  for (int l = 0; l < W; ++l) {
    const double half = scale * theta[slot * W + l];
    a.c[l] = T(std::cos(half));
    a.s[l] = T(std::sin(half));
  }
}

template <typename T>
inline void apply(const Tables& p, const int64_t* rec, State<T> st, const Lanes<T>& a,
                  bool inverse) {
  const int64_t k = rec[F_TARGETS];
  switch (rec[F_KIND]) {
    case DENSE:
      if (k == 1) dense<1>(p, rec, st, inverse);
      else if (k == 2) dense<2>(p, rec, st, inverse);
      else dense<3>(p, rec, st, inverse);
      return;
    case PERM:
      if (k == 1) perm<1>(p, rec, st, inverse);
      else if (k == 2) perm<2>(p, rec, st, inverse);
      else perm<3>(p, rec, st, inverse);
      return;
    case DIAG:
      diagonal<T>(p, rec, st, inverse, nullptr);
      return;
    default:
      break;
  }
  Lanes<T> b = a;  // ROT or PHASE: un-apply with the angle negated
  if (inverse) {
    GQN_LANES
    for (int l = 0; l < W; ++l) b.s[l] = -b.s[l];
  }
  if (rec[F_KIND] == PHASE) {
    diagonal(p, rec, st, inverse, &b);
  } else if (k == 1) {
    rot<1>(p, rec, st, b);
  } else if (k == 2) {
    rot<2>(p, rec, st, b);
  } else {
    rot<3>(p, rec, st, b);
  }
}

// 2 Re <lam| dU psi_before> of a rotation or phase op, from psi AFTER the op, per lane into g.
template <typename T>
inline void gradient(const Tables& p, const int64_t* rec, State<T> psi, State<T> lam, double* g) {
  if (rec[F_KIND] == PHASE) return phase_grad(p, rec, psi, lam, g);
  const int64_t k = rec[F_TARGETS];
  if (k == 1) return rot_grad<1>(p, rec, psi, lam, g);
  if (k == 2) return rot_grad<2>(p, rec, psi, lam, g);
  return rot_grad<3>(p, rec, psi, lam, g);
}

// ---- readout ---------------------------------------------------------------------------------
inline double sign(int64_t b, int64_t z) { return __builtin_parityll(uint64_t(b & z)) ? -1.0 : 1.0; }

// out: (W, O) outputs of the group's lanes.
template <typename T>
inline void readout(const Tables& p, State<T> st, double* out) {
  const int64_t D = p.dim, O = p.num_outputs;
  fill(out, W * O, 0.0);
  const T* __restrict re = st.re;
  const T* __restrict im = st.im;
  if (p.readout == PROBABILITY) {
    for (int64_t b = 0; b < D; ++b) {
      const int64_t o = p.index[b];
      if (o < 0) continue;
      GQN_LANES
      for (int l = 0; l < W; ++l) {
        out[l * O + o] += double(re[b * W + l] * re[b * W + l] + im[b * W + l] * im[b * W + l]);
      }
    }
    return;
  }
  for (int64_t t = 0; t < p.num_terms; ++t) {
    const int64_t x = p.xmask[t], z = p.zmask[t];
    alignas(64) double sr[W] = {}, si[W] = {};
    for (int64_t b = 0; b < D; ++b) {
      const T s = T(sign(b, z));
      const int64_t i = b * W, k = (b ^ x) * W;
      GQN_LANES
      for (int l = 0; l < W; ++l) {  // s conj(psi[b ^ x]) psi[b]
        sr[l] += double(s * (re[k + l] * re[i + l] + im[k + l] * im[i + l]));
        si[l] += double(s * (re[k + l] * im[i + l] - im[k + l] * re[i + l]));
      }
    }
    const int64_t o = p.term_output[t];
    GQN_LANES
    for (int l = 0; l < W; ++l) {
      out[l * O + o] += p.coeff[2 * t] * sr[l] - p.coeff[2 * t + 1] * si[l];
    }
  }
}

// lam = sum_o w[o] H_o psi per lane (w: (W, O) cotangents), or, with w null, lam_e = H_o psi
// for the outputs o = first + e, e < count (lam holds count group states of D * W).
template <typename T>
inline void adjoint_states(const Tables& p, State<T> psi, const double* w, int64_t first,
                           int64_t count, State<T> lam) {
  const int64_t D = p.dim, O = p.num_outputs;
  const int64_t states = w ? 1 : count;
  fill(lam.re, states * D * W, T(0));
  fill(lam.im, states * D * W, T(0));
  if (p.readout == PROBABILITY) {
    for (int64_t b = 0; b < D; ++b) {
      const int64_t o = p.index[b];
      if (o < 0 || (!w && (o < first || o >= first + count))) continue;
      const int64_t to = (w ? 0 : (o - first) * D * W) + b * W;
      GQN_LANES
      for (int l = 0; l < W; ++l) {
        const T scale = w ? T(w[l * O + o]) : T(1);
        lam.re[to + l] = scale * psi.re[b * W + l];
        lam.im[to + l] = scale * psi.im[b * W + l];
      }
    }
    return;
  }
  // H psi [a] = psi[a ^ x] s(a) (c sigma + conj(c)) / 2, sigma = (-1)^|x & z|
  for (int64_t t = 0; t < p.num_terms; ++t) {
    const int64_t x = p.xmask[t], z = p.zmask[t], o = p.term_output[t];
    if (!w && (o < first || o >= first + count)) continue;
    const double sigma = sign(x, z), cr = p.coeff[2 * t], ci = p.coeff[2 * t + 1];
    alignas(64) T hr[W], hi[W];
    GQN_LANES
    for (int l = 0; l < W; ++l) {
      const double scale = w ? w[l * O + o] : 1.0;
      hr[l] = T(0.5 * (cr * sigma + cr) * scale);
      hi[l] = T(0.5 * (ci * sigma - ci) * scale);
    }
    T* lr = lam.re + (w ? 0 : (o - first) * D * W);
    T* li = lam.im + (w ? 0 : (o - first) * D * W);
    for (int64_t a = 0; a < D; ++a) {
      const T s = T(sign(a, z));
      const int64_t i = a * W, k = (a ^ x) * W;
      GQN_LANES
      for (int l = 0; l < W; ++l) {
        const T xr = psi.re[k + l], xi = psi.im[k + l];
        lr[i + l] += s * (hr[l] * xr - hi[l] * xi);
        li[i + l] += s * (hr[l] * xi + hi[l] * xr);
      }
    }
  }
}

// ---- groups of rows --------------------------------------------------------------------------
// theta: (K, W) the group's angles (lanes past the last row repeat it); the shift added to
// slot shift_slot.
inline void gather_angles(const double* angles, int64_t K, int64_t first, int64_t count,
                          int32_t shift_slot, double shift, double* theta) {
  GQN_LANES
  for (int l = 0; l < W; ++l) {
    const double* row = angles + (first + (l < count ? l : count - 1)) * K;
    for (int64_t k = 0; k < K; ++k) theta[k * W + l] = row[k];
  }
  if (shift_slot >= 0) {
    GQN_LANES
    for (int l = 0; l < W; ++l) theta[shift_slot * W + l] += shift;
  }
}

template <typename T>
inline void evolve(const Tables& p, const double* theta, State<T> st) {
  fill(st.re, p.dim * W, T(0));
  fill(st.im, p.dim * W, T(0));
  GQN_LANES
  for (int l = 0; l < W; ++l) st.re[l] = T(1);
  Lanes<T> a;
  for (int64_t i = 0; i < p.num_ops; ++i) {
    const int64_t* rec = p.op(i);
    if (rec[F_SLOT] >= 0) angle_of(rec, theta, a);
    apply(p, rec, st, a, false);
  }
}

template <typename T>
void store_final(const Tables& p, State<T> st, int64_t count, T* final_rows) {
  const int64_t D = p.dim;
  for (int64_t l = 0; l < count; ++l) {
    T* f = final_rows + 2 * l * D;  // interleaved (re, im)
    for (int64_t i = 0; i < D; ++i) {
      f[2 * i] = st.re[i * W + l];
      f[2 * i + 1] = st.im[i * W + l];
    }
  }
}

template <typename T>
void forward(const Tables& p, const double* angles, int64_t rows, const int32_t* shift_slot,
             const double* shift_value, int64_t shifts, double* out, T* final_states) {
  const int64_t D = p.dim, K = p.num_slots, O = p.num_outputs;
  Buffer<T> buffer(2 * D * W);
  Buffer<double> theta(K * W + 1);
  Buffer<double> values(W * O + 1);
  const State<T> st{buffer.data, buffer.data + D * W};
  bool kept = false;
  for (int64_t s = 0; s < shifts; ++s) {
    const bool keep = final_states != nullptr && shift_slot[s] < 0 && !kept;
    for (int64_t first = 0; first < rows; first += W) {
      const int64_t count = rows - first < W ? rows - first : W;
      gather_angles(angles, K, first, count, shift_slot[s], shift_value[s], theta.data);
      evolve(p, theta.data, st);
      readout(p, st, values.data);
      double* dest = out + (s * rows + first) * O;
      for (int64_t i = 0; i < count * O; ++i) dest[i] = values.data[i];
      if (keep) store_final(p, st, count, final_states + 2 * first * D);
    }
    kept = kept || keep;
  }
}

template <typename T>
void adjoint(const Tables& p, const double* angles, int64_t rows, const int64_t* column,
             int64_t num_columns, const double* cotangent, int64_t output_first,
             int64_t output_count, double* out, const T* final_states) {
  const int64_t D = p.dim, K = p.num_slots, O = p.num_outputs, S = num_columns;
  const int64_t E = cotangent ? 1 : output_count;
  int64_t first_op = p.num_ops;
  for (int64_t i = 0; i < p.num_ops; ++i) {
    const int64_t slot = p.op(i)[F_SLOT];
    if (slot >= 0 && column[slot] >= 0) {
      first_op = i;
      break;
    }
  }
  Buffer<T> buffer(2 * D * W * (1 + E));
  Buffer<double> theta(K * W + 1);
  Buffer<double> grads(E * S * W + 1);  // (E, S, W)
  Buffer<double> weights(W * O + 1);
  const State<T> psi{buffer.data, buffer.data + D * W};
  T* lam_re = buffer.data + 2 * D * W;
  T* lam_im = lam_re + E * D * W;
  Lanes<T> a;
  for (int64_t first = 0; first < rows; first += W) {
    const int64_t count = rows - first < W ? rows - first : W;
    gather_angles(angles, K, first, count, -1, 0.0, theta.data);
    if (final_states) {
      GQN_LANES
      for (int l = 0; l < W; ++l) {
        const T* f = final_states + 2 * (first + (l < count ? l : count - 1)) * D;
        for (int64_t i = 0; i < D; ++i) {
          psi.re[i * W + l] = f[2 * i];
          psi.im[i * W + l] = f[2 * i + 1];
        }
      }
    } else {
      evolve(p, theta.data, psi);
    }
    if (cotangent) {
      GQN_LANES
      for (int l = 0; l < W; ++l) {
        const double* row = cotangent + (first + (l < count ? l : count - 1)) * O;
        for (int64_t o = 0; o < O; ++o) weights.data[l * O + o] = row[o];
      }
    }
    adjoint_states(p, psi, cotangent ? weights.data : nullptr, output_first, output_count,
                   State<T>{lam_re, lam_im});
    fill(grads.data, E * S * W, 0.0);
    for (int64_t i = p.num_ops - 1; i >= first_op; --i) {
      const int64_t* rec = p.op(i);
      const int64_t slot = rec[F_SLOT];
      const int64_t col = slot >= 0 ? column[slot] : -1;
      if (col >= 0) {  // from psi and lam after the op
        for (int64_t e = 0; e < E; ++e) {
          const State<T> le{lam_re + e * D * W, lam_im + e * D * W};
          gradient(p, rec, psi, le, grads.data + (e * S + col) * W);
        }
      }
      if (i == first_op) break;
      if (slot >= 0) angle_of(rec, theta.data, a);
      apply(p, rec, psi, a, true);
      for (int64_t e = 0; e < E; ++e) {
        apply(p, rec, State<T>{lam_re + e * D * W, lam_im + e * D * W}, a, true);
      }
    }
    for (int64_t l = 0; l < count; ++l) {
      double* g = out + (first + l) * E * S;
      for (int64_t es = 0; es < E * S; ++es) g[es] = grads.data[es * W + l];
    }
  }
}

inline KernelSet make_kernel_set(const char* name) {
  KernelSet set;
  set.name = name;
  set.f64.forward = &forward<double>;
  set.f64.adjoint = &adjoint<double>;
  set.f32.forward = &forward<float>;
  set.f32.adjoint = &adjoint<float>;
  return set;
}

}  // namespace GQN_ISA
}  // namespace gqn
