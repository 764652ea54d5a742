// The native engine's kernels: a generic interpreter over a program's op table, one row at a
// time with the row's state (split into real and imaginary parts) in cache. Included once per
// instruction set by isa_*.cpp, each compiled with its own flags, inside namespace GQN_ISA.
//
// A row: |0...0>, every op of the table applied in order, then the readout. The adjoint method
// keeps one state psi and E adjoint states lam (E = O outputs, or one for a cotangent); the
// reverse sweep un-applies each op from psi and every lam and adds 2 Re <lam| dU psi> for each
// differentiated slot.
#pragma once

#include <cmath>
#include <cstdint>

#include "program.hpp"

#ifndef GQN_ISA
#error "define GQN_ISA (the instruction set's namespace) before including kernels.hpp"
#endif

namespace gqn {
namespace GQN_ISA {

// No standard-library templates below: each instruction set's copy of a template would be one
// symbol for the linker, which keeps one of them (an AVX-512 one could run on any CPU).
template <typename T>
inline void fill(T* first, int64_t count, T value) {
  for (int64_t i = 0; i < count; ++i) first[i] = value;
}

template <typename T>
struct Buffer {  // a call's scratch, owned
  T* data;
  explicit Buffer(int64_t size) : data(new T[size]) {}
  ~Buffer() { delete[] data; }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

template <typename T>
struct State {
  T* re;
  T* im;
};

// Insert a zero bit at each of the sorted positions (the op's targets and controls).
inline int64_t expand(int64_t m, const int64_t* pos, int64_t npos) {
  for (int64_t i = 0; i < npos; ++i) {
    const int64_t p = pos[i];
    m = ((m >> p) << (p + 1)) | (m & ((int64_t(1) << p) - 1));
  }
  return m;
}

// The sub-blocks an op acts on: outer blocks u (controls matching), each a contiguous run of
// indices below the lowest target or control.
struct Walk {
  const int64_t* pos;
  int64_t npos, cval, outer, run, low;
  Walk(const Tables& p, const int64_t* rec)
      : pos(p.ints + rec[F_POS]), npos(rec[F_NPOS]), cval(rec[F_CVAL]) {
    low = npos ? pos[0] : p.num_qubits;
    run = int64_t(1) << low;
    outer = (p.dim >> npos) >> low;
  }
  int64_t base(int64_t u) const { return expand(u << low, pos, npos) | cval; }
};

struct Angle {
  double c, s;
};

// ---- grouped ops: dense, permutation, rotation on K <= 3 targets ------------------------------
template <int K, typename T, typename Body>
inline void grouped(const Tables& p, const int64_t* rec, State<T> st, const Body& body) {
  constexpr int M = 1 << K;
  const Walk w(p, rec);
  const int64_t* offsets = p.ints + rec[F_OFF];
  int64_t off[M];
  for (int j = 0; j < M; ++j) off[j] = offsets[j];
  T* __restrict re = st.re;
  T* __restrict im = st.im;
  for (int64_t u = 0; u < w.outer; ++u) {
    const int64_t b = w.base(u);
    for (int64_t r = 0; r < w.run; ++r) {
      const int64_t i = b + r;
      T xr[M], xi[M], yr[M], yi[M];
      for (int j = 0; j < M; ++j) {
        xr[j] = re[i + off[j]];
        xi[j] = im[i + off[j]];
      }
      body(xr, xi, yr, yi);
      for (int j = 0; j < M; ++j) {
        re[i + off[j]] = yr[j];
        im[i + off[j]] = yi[j];
      }
    }
  }
}

template <int K, typename T>
inline void dense(const Tables& p, const int64_t* rec, State<T> st, bool inverse) {
  constexpr int M = 1 << K;
  const double* m = p.cdata + 2 * rec[inverse ? F_IDATA : F_DATA];
  T mr[M * M], mi[M * M];
  for (int j = 0; j < M * M; ++j) {
    mr[j] = T(m[2 * j]);
    mi[j] = T(m[2 * j + 1]);
  }
  grouped<K>(p, rec, st, [&](const T* xr, const T* xi, T* yr, T* yi) {
    for (int j = 0; j < M; ++j) {
      T ar = 0, ai = 0;
      for (int l = 0; l < M; ++l) {
        ar += mr[j * M + l] * xr[l] - mi[j * M + l] * xi[l];
        ai += mr[j * M + l] * xi[l] + mi[j * M + l] * xr[l];
      }
      yr[j] = ar;
      yi[j] = ai;
    }
  });
}

template <int K, typename T>
inline void perm(const Tables& p, const int64_t* rec, State<T> st, bool inverse) {
  constexpr int M = 1 << K;
  const double* ph = p.cdata + 2 * rec[inverse ? F_IDATA : F_DATA];
  const int64_t* source = p.ints + rec[inverse ? F_ISRC : F_SRC];
  T pr[M], pi[M];
  int src[M];
  for (int j = 0; j < M; ++j) {
    pr[j] = T(ph[2 * j]);
    pi[j] = T(ph[2 * j + 1]);
    src[j] = int(source[j]);
  }
  grouped<K>(p, rec, st, [&](const T* xr, const T* xi, T* yr, T* yi) {
    for (int j = 0; j < M; ++j) {
      const T ar = xr[src[j]], ai = xi[src[j]];
      yr[j] = pr[j] * ar - pi[j] * ai;
      yi[j] = pr[j] * ai + pi[j] * ar;
    }
  });
}

// exp(-i theta/2 G) = cos(theta/2) I + sin(theta/2) (-i G); coefficients are -i G[j, src[j]].
template <int K, typename T>
inline void rot(const Tables& p, const int64_t* rec, State<T> st, Angle a) {
  constexpr int M = 1 << K;
  const double* coef = p.cdata + 2 * rec[F_DATA];
  const int64_t* source = p.ints + rec[F_SRC];
  T gr[M], gi[M];
  int src[M];
  const T c = T(a.c), s = T(a.s);
  for (int j = 0; j < M; ++j) {
    gr[j] = s * T(coef[2 * j]);
    gi[j] = s * T(coef[2 * j + 1]);
    src[j] = int(source[j]);
  }
  grouped<K>(p, rec, st, [&](const T* xr, const T* xi, T* yr, T* yi) {
    for (int j = 0; j < M; ++j) {
      const T ar = xr[src[j]], ai = xi[src[j]];
      yr[j] = c * xr[j] + gr[j] * ar - gi[j] * ai;
      yi[j] = c * xi[j] + gr[j] * ai + gi[j] * ar;
    }
  });
}

// d/dtheta of a rotation: -s/2 I + c/2 (-i G); returns 2 Re <lam| dU psi>.
template <int K, typename T>
inline double rot_grad(const Tables& p, const int64_t* rec, const T* __restrict pr,
                       const T* __restrict pi, const T* __restrict lr, const T* __restrict li,
                       Angle a) {
  constexpr int M = 1 << K;
  const Walk w(p, rec);
  const int64_t* offsets = p.ints + rec[F_OFF];
  const double* coef = p.cdata + 2 * rec[F_DATA];
  const int64_t* source = p.ints + rec[F_SRC];
  int64_t off[M], soff[M];
  T gr[M], gi[M];
  const T dc = T(-0.5 * a.s), ds = T(0.5 * a.c);
  for (int j = 0; j < M; ++j) {
    off[j] = offsets[j];
    soff[j] = offsets[source[j]];
    gr[j] = ds * T(coef[2 * j]);
    gi[j] = ds * T(coef[2 * j + 1]);
  }
  double total = 0;
  for (int64_t u = 0; u < w.outer; ++u) {
    const int64_t b = w.base(u);
    T acc = 0;
    for (int64_t r = 0; r < w.run; ++r) {
      const int64_t i = b + r;
      for (int j = 0; j < M; ++j) {
        const int64_t t = i + off[j], q = i + soff[j];
        const T dr = dc * pr[t] + gr[j] * pr[q] - gi[j] * pi[q];
        const T di = dc * pi[t] + gr[j] * pi[q] + gi[j] * pr[q];
        acc += lr[t] * dr + li[t] * di;  // Re(conj(lam) d)
      }
    }
    total += double(acc);
  }
  return 2 * total;
}

// ---- diagonal ops: constant diagonals and phases, any number of targets ----------------------
template <typename T>
inline void diagonal(const Tables& p, const int64_t* rec, State<T> st, bool inverse,
                     const Angle* phase) {
  const Walk w(p, rec);
  const int64_t M = int64_t(1) << rec[F_TARGETS];
  const int64_t* off = p.ints + rec[F_OFF];
  const double* d = p.cdata + 2 * rec[inverse ? F_IDATA : F_DATA];
  T* __restrict re = st.re;
  T* __restrict im = st.im;
  for (int64_t j = 0; j < M; ++j) {
    double fr, fi;
    if (phase != nullptr) {
      if (d[2 * j] == 0) continue;
      fr = phase->c;
      fi = inverse ? -phase->s : phase->s;
    } else {
      fr = d[2 * j];
      fi = d[2 * j + 1];
      if (fr == 1 && fi == 0) continue;
    }
    const T ar = T(fr), ai = T(fi);
    for (int64_t u = 0; u < w.outer; ++u) {
      const int64_t b = w.base(u) + off[j];
      for (int64_t r = 0; r < w.run; ++r) {
        const T xr = re[b + r], xi = im[b + r];
        re[b + r] = ar * xr - ai * xi;
        im[b + r] = ar * xi + ai * xr;
      }
    }
  }
}

// d/dtheta of exp(i theta) on the masked sub-blocks: 2 Re <lam| i e^{i theta} psi>.
template <typename T>
inline double phase_grad(const Tables& p, const int64_t* rec, const T* __restrict pr,
                         const T* __restrict pi, const T* __restrict lr, const T* __restrict li,
                         Angle a) {
  const Walk w(p, rec);
  const int64_t M = int64_t(1) << rec[F_TARGETS];
  const int64_t* off = p.ints + rec[F_OFF];
  const double* d = p.cdata + 2 * rec[F_DATA];
  double zr = 0, zi = 0;
  for (int64_t j = 0; j < M; ++j) {
    if (d[2 * j] == 0) continue;
    for (int64_t u = 0; u < w.outer; ++u) {
      const int64_t b = w.base(u) + off[j];
      T ar = 0, ai = 0;
      for (int64_t r = 0; r < w.run; ++r) {
        ar += lr[b + r] * pr[b + r] + li[b + r] * pi[b + r];
        ai += lr[b + r] * pi[b + r] - li[b + r] * pr[b + r];
      }
      zr += double(ar);
      zi += double(ai);
    }
  }
  return 2 * (-a.s * zr - a.c * zi);
}

// ---- one op ----------------------------------------------------------------------------------
inline Angle angle_of(const int64_t* rec, double theta) {
  const double half = rec[F_KIND] == ROT ? 0.5 * theta : theta;
  return Angle{std::cos(half), std::sin(half)};
}

template <typename T>
inline void apply(const Tables& p, const int64_t* rec, State<T> st, Angle a, bool inverse) {
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
    case ROT: {
      const Angle b{a.c, inverse ? -a.s : a.s};
      if (k == 1) rot<1>(p, rec, st, b);
      else if (k == 2) rot<2>(p, rec, st, b);
      else rot<3>(p, rec, st, b);
      return;
    }
    case DIAG:
      diagonal(p, rec, st, inverse, nullptr);
      return;
    default:  // PHASE
      diagonal(p, rec, st, inverse, &a);
      return;
  }
}

template <typename T>
inline double gradient(const Tables& p, const int64_t* rec, State<T> psi, State<T> lam, Angle a) {
  if (rec[F_KIND] == PHASE) return phase_grad(p, rec, psi.re, psi.im, lam.re, lam.im, a);
  const int64_t k = rec[F_TARGETS];
  if (k == 1) return rot_grad<1>(p, rec, psi.re, psi.im, lam.re, lam.im, a);
  if (k == 2) return rot_grad<2>(p, rec, psi.re, psi.im, lam.re, lam.im, a);
  return rot_grad<3>(p, rec, psi.re, psi.im, lam.re, lam.im, a);
}

// ---- readout ---------------------------------------------------------------------------------
inline double sign(int64_t b, int64_t z) { return __builtin_parityll(uint64_t(b & z)) ? -1.0 : 1.0; }

template <typename T>
inline void readout(const Tables& p, State<T> st, double* out) {
  const int64_t D = p.dim, O = p.num_outputs;
  fill(out, O, 0.0);
  if (p.readout == PROBABILITY) {
    const int64_t* index = p.index;
    for (int64_t b = 0; b < D; ++b) {
      if (index[b] >= 0) {
        out[index[b]] += double(st.re[b]) * st.re[b] + double(st.im[b]) * st.im[b];
      }
    }
    return;
  }
  const int64_t terms = p.num_terms;
  for (int64_t t = 0; t < terms; ++t) {
    const int64_t x = p.xmask[t], z = p.zmask[t];
    double sr = 0, si = 0;
    if (x == 0) {
      for (int64_t b = 0; b < D; ++b) {
        sr += sign(b, z) * (double(st.re[b]) * st.re[b] + double(st.im[b]) * st.im[b]);
      }
    } else {
      for (int64_t b = 0; b < D; ++b) {
        const double s = sign(b, z);
        const double ar = st.re[b ^ x], ai = st.im[b ^ x], br = st.re[b], bi = st.im[b];
        sr += s * (ar * br + ai * bi);  // conj(a) b
        si += s * (ar * bi - ai * br);
      }
    }
    out[p.term_output[t]] += p.coeff[2 * t] * sr - p.coeff[2 * t + 1] * si;
  }
}

// lam = sum_o w[o] H_o psi (w: the cotangent), or, with w null, lam_o = H_o psi for every
// output o (lam holds O states of D).
template <typename T>
inline void adjoint_states(const Tables& p, State<T> psi, const double* w, State<T> lam) {
  const int64_t D = p.dim, O = p.num_outputs;
  const int64_t states = w ? 1 : O;
  fill(lam.re, states * D, T(0));
  fill(lam.im, states * D, T(0));
  if (p.readout == PROBABILITY) {
    const int64_t* index = p.index;
    for (int64_t b = 0; b < D; ++b) {
      const int64_t o = index[b];
      if (o < 0) continue;
      if (w) {
        lam.re[b] = T(w[o] * psi.re[b]);
        lam.im[b] = T(w[o] * psi.im[b]);
      } else {
        lam.re[o * D + b] = psi.re[b];
        lam.im[o * D + b] = psi.im[b];
      }
    }
    return;
  }
  // H psi [a] = psi[a ^ x] s(a) (c sigma + conj(c)) / 2, sigma = (-1)^|x & z|
  const int64_t terms = p.num_terms;
  for (int64_t t = 0; t < terms; ++t) {
    const int64_t x = p.xmask[t], z = p.zmask[t], o = p.term_output[t];
    const double sigma = sign(x, z), cr = p.coeff[2 * t], ci = p.coeff[2 * t + 1];
    const double scale = w ? w[o] : 1.0;
    const double hr = 0.5 * (cr * sigma + cr) * scale, hi = 0.5 * (ci * sigma - ci) * scale;
    T* lr = lam.re + (w ? 0 : o * D);
    T* li = lam.im + (w ? 0 : o * D);
    for (int64_t a = 0; a < D; ++a) {
      const double s = sign(a, z);
      const double xr = psi.re[a ^ x], xi = psi.im[a ^ x];
      lr[a] += T(s * (hr * xr - hi * xi));
      li[a] += T(s * (hr * xi + hi * xr));
    }
  }
}

// ---- rows ------------------------------------------------------------------------------------
template <typename T>
inline void ground(State<T> st, int64_t D) {
  fill(st.re, D, T(0));
  fill(st.im, D, T(0));
  st.re[0] = T(1);
}

template <typename T>
inline void evolve(const Tables& p, const double* theta, int32_t shift_slot, double shift,
                   State<T> st) {
  ground(st, p.dim);
  for (int64_t i = 0; i < p.num_ops; ++i) {
    const int64_t* rec = p.op(i);
    const int64_t slot = rec[F_SLOT];
    Angle a{1, 0};
    if (slot >= 0) a = angle_of(rec, theta[slot] + (slot == shift_slot ? shift : 0.0));
    apply(p, rec, st, a, false);
  }
}

template <typename T>
void forward(const Tables& p, const double* angles, int64_t rows, const int32_t* shift_slot,
             const double* shift_value, int64_t shifts, double* out,
             T* final_states) {
  const int64_t D = p.dim, K = p.num_slots, O = p.num_outputs;
  Buffer<T> buffer(2 * D);
  const State<T> st{buffer.data, buffer.data + D};
  bool kept = false;
  for (int64_t s = 0; s < shifts; ++s) {
    const bool keep = final_states != nullptr && shift_slot[s] < 0 && !kept;
    for (int64_t b = 0; b < rows; ++b) {
      evolve(p, angles + b * K, shift_slot[s], shift_value[s], st);
      readout(p, st, out + (s * rows + b) * O);
      if (keep) {
        T* f = final_states + 2 * b * D;  // interleaved (re, im)
        for (int64_t i = 0; i < D; ++i) {
          f[2 * i] = st.re[i];
          f[2 * i + 1] = st.im[i];
        }
      }
    }
    kept = kept || keep;
  }
}

template <typename T>
void adjoint(const Tables& p, const double* angles, int64_t rows, const int64_t* column,
             int64_t num_columns, const double* cotangent, double* out,
             const T* final_states) {
  const int64_t D = p.dim, K = p.num_slots, O = p.num_outputs, S = num_columns;
  const int64_t E = cotangent ? 1 : O;
  int64_t first = p.num_ops;
  for (int64_t i = 0; i < p.num_ops; ++i) {
    const int64_t slot = p.op(i)[F_SLOT];
    if (slot >= 0 && column[slot] >= 0) {
      first = i;
      break;
    }
  }
  Buffer<T> buffer(2 * D * (1 + E));
  const State<T> psi{buffer.data, buffer.data + D};
  T* lam_re = buffer.data + 2 * D;
  T* lam_im = lam_re + E * D;
  const State<T> lam{lam_re, lam_im};
  for (int64_t b = 0; b < rows; ++b) {
    const double* theta = angles + b * K;
    double* g = out + b * E * S;
    fill(g, E * S, 0.0);
    if (final_states) {
      const T* f = final_states + 2 * b * D;
      for (int64_t i = 0; i < D; ++i) {
        psi.re[i] = f[2 * i];
        psi.im[i] = f[2 * i + 1];
      }
    } else {
      evolve(p, theta, -1, 0.0, psi);
    }
    adjoint_states(p, psi, cotangent ? cotangent + b * O : nullptr, lam);
    for (int64_t i = p.num_ops - 1; i >= first; --i) {
      const int64_t* rec = p.op(i);
      const int64_t slot = rec[F_SLOT];
      Angle a{1, 0};
      if (slot >= 0) a = angle_of(rec, theta[slot]);
      apply(p, rec, psi, a, true);
      const int64_t col = slot >= 0 ? column[slot] : -1;
      for (int64_t e = 0; e < E; ++e) {
        const State<T> le{lam_re + e * D, lam_im + e * D};
        if (col >= 0) g[e * S + col] += gradient(p, rec, psi, le, a);
        if (i > first) apply(p, rec, le, a, true);
      }
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
