// Linear attention CPU kernels, included by linear_attention.cpp once per instruction set
// inside its own namespace (LA_VBYTES = SIMD register width in bytes), so every function
// here is compiled for that ISA. No include guard on purpose.
//
// Both directions are a few skinny GEMMs on (channels x N) blocks plus per-column
// reductions. Everything walks N in blocks of up to kBlockN columns (fewer for wide Ck,
// so that a block of phi(q) or phi(k) stays in L2 and its micro-panels in L1); per block
// the feature map (l2 column norm or softplus) is applied while the q or k block is
// copied into scratch, so the inputs are read from memory once per pass. The GEMMs
// share one register-tiled micro-kernel (6 rows x 2 vectors of accumulators, A
// broadcast from 6 row pointers, B rows loaded as vectors), chunked over rows so A's
// chunk stays in L2. fp32 (fp64 for double) accumulation throughout.
//
// Threads: one OpenMP region per call. Each thread takes a contiguous range of (batch,
// N-block) items, keeps partial summaries for the batches it touches, and after a
// barrier the partials are summed (rows split over threads) before the second pass.
//
// Forward (per batch), two passes:
//   pass 1 over k, v:  KV^T (Cv x Ck) += V_blk . phi(K_blk)^T, s_k += rowsum phi(K_blk),
//                      S_v += rowsum V_blk. phi(K_blk) is transposed into (n x Ck) so the
//                      micro-kernel broadcasts v and loads contiguous rows of k.
//   pass 2 over q:     out_n = (KV^T phi(q_n) + a S_v) / den_n, den_n = a N +
//                      phi(q_n).(s_k + eps), a = 1 (taylor) or 0 (softplus), computed
//                      as [KV^T | S_v] . [phi(q_n) / den_n ; a / den_n] (see output_block).
//
// Backward. With g = dL/dout, phi_q, phi_k the feature maps, num_n = out_n * den_n:
//   dnum_n  = g_n / den_n                              (Cv)
//   dden_n  = -(g_n . out_n) / den_n                   (scalar; out is saved, no recompute)
//   dphi_q  = KV dnum_n + dden_n (s_k + eps)           (Ck)
//   dKV     = sum_n phi_q_n dnum_n^T                   (Ck x Cv)
//   ds_k    = sum_n dden_n phi_q_n,  dS_v = a sum_n dnum_n
//   dphi_k  = dKV v_n + ds_k,        dv_n = dKV^T phi_k_n + dS_v
//   taylor:   dx_n = (dphi_n - x^_n (x^_n . dphi_n)) / ||x_n||   (0 for a zero column)
//   softplus: dx = dphi * sigmoid(x)
// so pass A over (q, dout, out) gives dq and the partial dKV / ds_k / dS_v, and pass B
// over (k, v) gives dk and dv: four GEMMs of Ck x Cv x N in all, against two forward.

// Inside run_threads: all threads wait here (a no-op with one thread).
static LA_INLINE void barrier() {
#ifdef EFFSEG_OPENMP
#pragma omp barrier
#endif
}

template <class F>
static void run_threads(int nth, F&& f) {
#ifdef EFFSEG_OPENMP
  if (nth > 1) {
#pragma omp parallel num_threads(nth)
    f(omp_get_thread_num(), omp_get_num_threads());
    return;
  }
#endif
  f(0, 1);
}

// softplus(x) and its derivative sigmoid(x) (common/simd_math.h); the baseline build has
// no FMA on x86-64.
template <class T>
using Math = simd::Math<T, std::conditional_t<(LA_VBYTES >= 32), ArchAVX2, ArchBase>>;

template <class T>
struct Impl {
  static constexpr int VW = LA_VBYTES / int(sizeof(T));  // lanes per vector
  static constexpr int MR = 6;                           // micro-tile rows
  static constexpr int64_t kBlockN = 256;                // N columns per block
  typedef T V __attribute__((vector_size(LA_VBYTES)));

  // x - 0 is x for every x (also -0), so GCC folds it to a plain broadcast; 0 + x is not.
  static LA_INLINE V splat(T x) { return x - V{}; }
  static LA_INLINE V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static LA_INLINE void store(T* p, const V& v) { std::memcpy(p, &v, sizeof v); }

  // ---------------------------------------------------------------------------------
  // GEMM micro-kernel: acc[i][j] = sum_k A[i][k] * B[k][j*VW .. j*VW + VW) for the M rows
  // of A at a + i*lda (unit stride in k) and the rows of B at b + k*ldb; the
  // accumulators (M x NV vectors, in registers) then go to epi(i0, j0, tile).
  template <int M_, int NV_>
  struct Acc {
    static constexpr int M = M_, NV = NV_;
    V v[M][NV];
  };

  template <int M, int NV, class Epi>
  static LA_INLINE void tile(int64_t K, const T* a, int64_t lda, const T* b, int64_t ldb,
                             int64_t i0, int64_t j0, Epi& epi) {
    Acc<M, NV> acc;
    LA_UNROLL for (int i = 0; i < M; ++i) LA_UNROLL for (int j = 0; j < NV; ++j) acc.v[i][j] = V{};
    const T* ap[M];
    LA_UNROLL for (int i = 0; i < M; ++i) ap[i] = a + i * lda;
#pragma GCC unroll 4
    for (int64_t kk = 0; kk < K; ++kk) {
      const T* bp = b + kk * ldb;
      V bv[NV];
      LA_UNROLL for (int j = 0; j < NV; ++j) bv[j] = load(bp + j * VW);
      LA_UNROLL for (int i = 0; i < M; ++i) {
        const V ai = splat(ap[i][kk]);
        LA_UNROLL for (int j = 0; j < NV; ++j) acc.v[i][j] += ai * bv[j];
      }
    }
    epi(i0, j0, acc);
  }

  template <int NV, class Epi>
  static void tile_rows(int64_t i0, int64_t i1, int64_t K, const T* a, int64_t lda, const T* b,
                        int64_t ldb, int64_t j0, Epi& epi) {
    int64_t i = i0;
    // One column vector: 12 rows keep as many FMA chains in flight as 6 x 2 vectors do.
    if constexpr (NV == 1)
      for (; i + 2 * MR <= i1; i += 2 * MR) tile<2 * MR, 1>(K, a + i * lda, lda, b, ldb, i, j0, epi);
    for (; i + MR <= i1; i += MR) tile<MR, NV>(K, a + i * lda, lda, b, ldb, i, j0, epi);
    const T* ar = a + i * lda;
    switch (i1 - i) {
      case 5: tile<5, NV>(K, ar, lda, b, ldb, i, j0, epi); break;
      case 4: tile<4, NV>(K, ar, lda, b, ldb, i, j0, epi); break;
      case 3: tile<3, NV>(K, ar, lda, b, ldb, i, j0, epi); break;
      case 2: tile<2, NV>(K, ar, lda, b, ldb, i, j0, epi); break;
      case 1: tile<1, NV>(K, ar, lda, b, ldb, i, j0, epi); break;
      default: break;
    }
  }

  // C (M x ncols, ncols a multiple of VW) = A (M x K) . B (K x ncols), tile by tile. Rows
  // go in chunks of MC (their A rows, MC x K, stay in L2); within a chunk, column panels
  // of 2 vectors (1 for an odd last one): each B panel (K x 2 vectors) stays in L1 while
  // the chunk's row tiles of MR stream past it.
  static constexpr int64_t MC = 16 * MR;
  template <class Epi>
  static void gemm(int64_t M, int64_t ncols, int64_t K, const T* a, int64_t lda, const T* b,
                   int64_t ldb, Epi& epi) {
    for (int64_t ic = 0; ic < M; ic += MC) {
      const int64_t ie = std::min(M, ic + MC);
      for (int64_t j0 = 0; j0 < ncols; j0 += 2 * VW) {
        if (j0 + 2 * VW <= ncols)
          tile_rows<2>(ic, ie, K, a, lda, b + j0, ldb, j0, epi);
        else
          tile_rows<1>(ic, ie, K, a, lda, b + j0, ldb, j0, epi);
      }
    }
  }

  // Epilogue adding the tile into C (row stride ldc).
  struct AddInto {
    T* c;
    int64_t ldc;
    template <class A>
    LA_INLINE void operator()(int64_t i0, int64_t j0, const A& acc) const {
      constexpr int M = A::M, NV = A::NV;
      LA_UNROLL for (int i = 0; i < M; ++i) {
        T* row = c + (i0 + i) * ldc + j0;
        LA_UNROLL for (int j = 0; j < NV; ++j) store(row + j * VW, load(row + j * VW) + acc.v[i][j]);
      }
    }
  };

  // Store lanes [0, valid) of r (valid may exceed VW: then all of them).
  static LA_INLINE void store_part(T* p, const V& r, int64_t valid) {
    if (valid >= VW) {
      store(p, r);
    } else if (valid > 0) {
      T tmp[VW];
      std::memcpy(tmp, &r, sizeof r);
      std::memcpy(p, tmp, sizeof(T) * valid);
    }
  }

  // ---------------------------------------------------------------------------------
  // Block helpers. A block is `rows` rows of `ld` elements; columns [0, nbv) hold data,
  // [nbv, nbp) (nbp = nbv rounded up to VW) are kept at zero so vector loops can run
  // over whole vectors.

  // Sum of x[0, nbp), nbp a multiple of VW, in vector lanes (a scalar loop would not
  // vectorise: float addition is not associative).
  static LA_INLINE T row_sum(const T* x, int64_t nbp) {
    V acc = V{};
    for (int64_t n = 0; n < nbp; n += VW) acc += load(x + n);
    T t = T(0);
    LA_UNROLL for (int l = 0; l < VW; ++l) t += acc[l];
    return t;
  }

  static LA_INLINE T row_dot(const T* x, const T* y, int64_t nbp) {
    V acc = V{};
    for (int64_t n = 0; n < nbp; n += VW) acc += load(x + n) * load(y + n);
    T t = T(0);
    LA_UNROLL for (int l = 0; l < VW; ++l) t += acc[l];
    return t;
  }

  // dst = the block of src (rows of nbv elements, zero-padded to nbp); sums[r] += the
  // sum of row r when sums is given (read back from L1).
  static void copy_in(const T* src, int64_t lds, int64_t rows, int64_t nbv, int64_t nbp, T* dst,
                      int64_t ldd, T* sums = nullptr) {
    for (int64_t r = 0; r < rows; ++r) {
      const T* sr = src + r * lds;
      T* dr = dst + r * ldd;
      for (int64_t n = 0; n < nbv; ++n) dr[n] = sr[n];
      for (int64_t n = nbv; n < nbp; ++n) dr[n] = T(0);
      if (sums) sums[r] += row_sum(dr, nbp);
    }
  }

  static void copy_out(const T* src, int64_t lds, int64_t rows, int64_t nbv, T* dst, int64_t ldd) {
    for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * ldd, src + r * lds, sizeof(T) * nbv);
  }

  // dst (n x c, row stride ldd) = src^T for src (c x n, row stride lds): 8 x 8 tiles,
  // in registers when the vectors hold 8 lanes (the unpack / shuffle / 128-bit swap
  // network), element by element on the edges and for other widths.
  static void transpose(const T* src, int64_t lds, int64_t rows, int64_t cols, T* dst,
                        int64_t ldd) {
    constexpr int64_t t = 8;
    for (int64_t n0 = 0; n0 < cols; n0 += t) {
      const int64_t n1 = std::min(cols, n0 + t);
      for (int64_t c0 = 0; c0 < rows; c0 += t) {
        const int64_t c1 = std::min(rows, c0 + t);
        if constexpr (kTranspose8) {
          if (n1 - n0 == 8 && c1 - c0 == 8) {
            transpose8(src + c0 * lds + n0, lds, dst + n0 * ldd + c0, ldd);
            continue;
          }
        }
        for (int64_t n = n0; n < n1; ++n)
          for (int64_t c = c0; c < c1; ++c) dst[n * ldd + c] = src[c * lds + n];
      }
    }
  }

  // 8 x 8 float tiles in 256-bit registers, in the AVX2 build and the AVX-512 one alike.
  static constexpr bool kTranspose8 = sizeof(T) == 4 && LA_VBYTES >= 32;

  static LA_INLINE void transpose8(const T* src, int64_t lds, T* dst, int64_t ldd) {
    if constexpr (kTranspose8) {
      typedef int32_t I __attribute__((vector_size(32)));
      typedef T V8 __attribute__((vector_size(32)));
      V8 r[8], u[8];
      LA_UNROLL for (int i = 0; i < 8; ++i) std::memcpy(&r[i], src + i * lds, sizeof r[i]);
      LA_UNROLL for (int i = 0; i < 8; i += 2) {  // interleave row pairs
        u[i] = __builtin_shuffle(r[i], r[i + 1], I{0, 8, 1, 9, 4, 12, 5, 13});
        u[i + 1] = __builtin_shuffle(r[i], r[i + 1], I{2, 10, 3, 11, 6, 14, 7, 15});
      }
      LA_UNROLL for (int i = 0; i < 8; i += 4) {  // pairs of pairs
        r[i] = __builtin_shuffle(u[i], u[i + 2], I{0, 1, 8, 9, 4, 5, 12, 13});
        r[i + 1] = __builtin_shuffle(u[i], u[i + 2], I{2, 3, 10, 11, 6, 7, 14, 15});
        r[i + 2] = __builtin_shuffle(u[i + 1], u[i + 3], I{0, 1, 8, 9, 4, 5, 12, 13});
        r[i + 3] = __builtin_shuffle(u[i + 1], u[i + 3], I{2, 3, 10, 11, 6, 7, 14, 15});
      }
      LA_UNROLL for (int i = 0; i < 4; ++i) {  // 128-bit halves
        const V8 lo = __builtin_shuffle(r[i], r[i + 4], I{0, 1, 2, 3, 8, 9, 10, 11});
        const V8 hi = __builtin_shuffle(r[i], r[i + 4], I{4, 5, 6, 7, 12, 13, 14, 15});
        std::memcpy(dst + i * ldd, &lo, sizeof lo);
        std::memcpy(dst + (i + 4) * ldd, &hi, sizeof hi);
      }
    }
  }

  // dst = phi(block of src) (rows = channels, zero-padded from nbv to nbp). taylor:
  // aux[n] = 1/||x_n|| (0 for a zero column). softplus: aux (rows x ld), when given,
  // receives sigmoid(x) for the backward. sums[r] += the sum of row r of phi when given.
  static void load_feature(const T* src, int64_t lds, int64_t rows, int64_t nbv, int64_t nbp,
                           T* dst, int64_t ld, int kind, T* aux, T* sums) {
    if (kind == kTaylor) {
      for (int64_t n = 0; n < nbp; ++n) aux[n] = T(0);
      for (int64_t r = 0; r < rows; ++r) {  // copy, and the squared column norms
        const T* sr = src + r * lds;
        T* dr = dst + r * ld;
        for (int64_t n = 0; n < nbv; ++n) {
          dr[n] = sr[n];
          aux[n] += sr[n] * sr[n];
        }
        for (int64_t n = nbv; n < nbp; ++n) dr[n] = T(0);
      }
      // A column whose squared norm is 0 (underflow included) is taken as zero: its
      // feature is zero, and so is its gradient.
      for (int64_t n = 0; n < nbp; ++n) aux[n] = aux[n] > T(0) ? T(1) / std::sqrt(aux[n]) : T(0);
      for (int64_t r = 0; r < rows; ++r) {
        T* dr = dst + r * ld;
        for (int64_t n = 0; n < nbp; ++n) dr[n] *= aux[n];
        if (sums) sums[r] += row_sum(dr, nbp);
      }
      return;
    }
    for (int64_t r = 0; r < rows; ++r) {
      const T* sr = src + r * lds;
      T* dr = dst + r * ld;
      if (aux) {
        T* gr = aux + r * ld;
        for (int64_t n = 0; n < nbv; ++n) Math<T>::softplus_d(sr[n], dr[n], gr[n]);
        for (int64_t n = nbv; n < nbp; ++n) gr[n] = T(0);
      } else {
        for (int64_t n = 0; n < nbv; ++n) dr[n] = Math<T>::softplus(sr[n]);
      }
      for (int64_t n = nbv; n < nbp; ++n) dr[n] = T(0);
      if (sums) sums[r] += row_sum(dr, nbp);
    }
  }

  // dx (rows x nbv, row stride ldx) from dphi (block) through the feature map, given the
  // block phi(x) and aux from `feature`.
  static void feature_bwd(const T* phi, T* dphi, int64_t rows, int64_t ld, int64_t nbv,
                          int64_t nbp, int kind, const T* aux, T* tmp, T* dx, int64_t ldx) {
    if (kind == kTaylor) {
      for (int64_t n = 0; n < nbp; ++n) tmp[n] = T(0);
      for (int64_t r = 0; r < rows; ++r) {
        const T* pr = phi + r * ld;
        const T* dr = dphi + r * ld;
        for (int64_t n = 0; n < nbp; ++n) tmp[n] += pr[n] * dr[n];
      }
      for (int64_t r = 0; r < rows; ++r) {
        const T* pr = phi + r * ld;
        T* dr = dphi + r * ld;
        for (int64_t n = 0; n < nbp; ++n) dr[n] = aux[n] * (dr[n] - pr[n] * tmp[n]);
      }
    } else {
      for (int64_t r = 0; r < rows; ++r) {
        const T* sr = aux + r * ld;
        T* dr = dphi + r * ld;
        for (int64_t n = 0; n < nbp; ++n) dr[n] *= sr[n];
      }
    }
    copy_out(dphi, ld, rows, nbv, dx, ldx);
  }

  // ---------------------------------------------------------------------------------
  struct Geo {
    int64_t B, Ck, Cv, N;
    int64_t nb, nblk, items;  // block width, blocks per batch, B * nblk
    int64_t ckp;              // Ck rounded up to whole vectors
    int64_t ldn;              // row stride of (channels x block) scratch
    int64_t ldt;              // row stride of transposed (block x Ck) scratch
    int64_t ldkv;             // row stride of KV^T / dKV^T (Cv x ckp)
    int64_t ldcv;             // row stride of KV / dKV (Ck x Cv)
    int64_t part;             // one partial summary: KV^T, then s_k (ldkv), then S_v (Cv)
  };

  static Geo geometry(int64_t B, int64_t Ck, int64_t Cv, int64_t N, int nth) {
    Geo g{};
    g.B = B, g.Ck = Ck, g.Cv = Cv, g.N = N;
    // A block of phi(q) or phi(k) (Ck x nb) is the GEMMs' shared operand: keep it within
    // about 128 KiB so that it stays in L2 next to the other operand's row chunk.
    const int64_t fit = (int64_t{128} << 10) / (int64_t(sizeof(T)) * std::max<int64_t>(Ck, 1));
    g.nb = std::min<int64_t>(std::max<int64_t>(fit / (2 * VW) * (2 * VW), 4 * VW), kBlockN);
    g.nb = std::min<int64_t>(g.nb, round_up(N, 2 * VW));
    // Enough items for every thread (B = 1 at small N is the common case).
    while (g.nb > 4 * VW && B * ceil_div(N, g.nb) < nth) g.nb = round_up(g.nb / 2, 2 * VW);
    g.nblk = ceil_div(N, g.nb);
    g.items = B * g.nblk;
    g.ckp = round_up(Ck, VW);
    g.ldn = padded_ld(g.nb);
    g.ldt = padded_ld(g.ckp);
    g.ldkv = padded_ld(g.ckp);
    g.ldcv = padded_ld(Cv);
    g.part = Cv * g.ldkv + g.ldkv + Cv;
    return g;
  }

  // Partial sums per thread over a contiguous range of (batch, block) items: thread t
  // covers batches [lo[t], hi[t]] and keeps one partial per batch.
  struct Partials {
    std::vector<std::vector<T>> buf;
    std::vector<int64_t> lo, hi;
    explicit Partials(int nth) : buf(nth), lo(nth, 0), hi(nth, -1) {}
  };

  static void item_range(const Geo& g, int t, int nt, int64_t& i0, int64_t& i1) {
    i0 = g.items * t / nt;
    i1 = g.items * (t + 1) / nt;
  }

  // sum of the partials of batch b at offset off, count elements, into dst
  static void reduce_row(const Geo& g, const Partials& p, int64_t b, int64_t off, int64_t count,
                         T* dst) {
    for (int64_t e = 0; e < count; ++e) dst[e] = T(0);
    for (size_t t = 0; t < p.buf.size(); ++t) {
      if (b < p.lo[t] || b > p.hi[t]) continue;
      const T* src = p.buf[t].data() + (b - p.lo[t]) * g.part + off;
      for (int64_t e = 0; e < count; ++e) dst[e] += src[e];
    }
  }

  // ---------------------------------------------------------------------------------
  // Forward

  struct FwdScratch {
    std::vector<T> blk, kt, vb, aux, den;
    explicit FwdScratch(const Geo& g)
        : blk((g.Ck + 1) * g.ldn), kt(g.nb * g.ldt, T(0)), vb(g.Cv * g.ldn), aux(g.ldn), den(g.ldn) {}
  };

  static void summary_block(const Geo& g, const FwdArgs<T>& a, int64_t b, int64_t n0,
                            int64_t nbv, FwdScratch& s, T* part) {
    const int64_t nbp = round_up(nbv, VW);
    T* kvt = part;
    T* sk = part + g.Cv * g.ldkv;
    T* sv = sk + g.ldkv;
    load_feature(a.k + b * g.Ck * g.N + n0, g.N, g.Ck, nbv, nbp, s.blk.data(), g.ldn, a.kind,
                 a.kind == kTaylor ? s.aux.data() : nullptr, sk);
    transpose(s.blk.data(), g.ldn, g.Ck, nbv, s.kt.data(), g.ldt);
    // v is copied too: its rows are N apart in the input, often a multiple of 4 KiB,
    // which would put the rows of a block in the same few cache sets.
    copy_in(a.v + b * g.Cv * g.N + n0, g.N, g.Cv, nbv, nbp, s.vb.data(), g.ldn, sv);
    AddInto epi{kvt, g.ldkv};
    gemm(g.Cv, g.ckp, nbv, s.vb.data(), g.ldn, s.kt.data(), g.ldt, epi);
  }

  // out_n = (KV^T phi(q_n) + a S_v) / den_n, with the division moved onto the (Ck x nb)
  // feature block instead of the (Cv x nb) output: phi(q_n) is scaled by 1/den_n and, for
  // taylor, a row of 1/den_n is appended and matched by the column S_v of KV^T (kvt has
  // it at column Ck). The micro-kernel's epilogue is then a plain store.
  static void output_block(const Geo& g, const FwdArgs<T>& a, int64_t b, int64_t n0,
                           int64_t nbv, FwdScratch& s, const T* kvt, const T* ske) {
    const int64_t nbp = round_up(nbv, VW);
    const bool taylor = a.kind == kTaylor;
    T* qb = s.blk.data();
    load_feature(a.q + b * g.Ck * g.N + n0, g.N, g.Ck, nbv, nbp, qb, g.ldn, a.kind,
                 taylor ? s.aux.data() : nullptr, nullptr);
    T* rden = taylor ? qb + g.Ck * g.ldn : s.den.data();
    const T base = taylor ? T(g.N) : T(0);
    for (int64_t n = 0; n < nbp; ++n) rden[n] = base;
    for (int64_t c = 0; c < g.Ck; ++c) {
      const T w = ske[c];
      const T* r = qb + c * g.ldn;
      for (int64_t n = 0; n < nbp; ++n) rden[n] += w * r[n];
    }
    // Padding columns may have den = 0 (softplus): give them 1, they are never stored.
    for (int64_t n = 0; n < nbp; ++n) rden[n] = T(1) / (n < nbv ? rden[n] : T(1));
    for (int64_t c = 0; c < g.Ck; ++c) {
      T* r = qb + c * g.ldn;
      for (int64_t n = 0; n < nbp; ++n) r[n] *= rden[n];
    }
    T* out = a.out + b * g.Cv * g.N + n0;
    auto epi = [&](int64_t i0, int64_t j0, const auto& acc) LA_LAMBDA_INLINE {
      using A = std::decay_t<decltype(acc)>;
      constexpr int M = A::M, NV = A::NV;
      LA_UNROLL for (int i = 0; i < M; ++i) {
        T* o = out + (i0 + i) * g.N + j0;
        LA_UNROLL for (int j = 0; j < NV; ++j) store_part(o + j * VW, acc.v[i][j], nbv - j0 - j * VW);
      }
    };
    gemm(g.Cv, nbp, g.Ck + (taylor ? 1 : 0), kvt, g.ldkv, qb, g.ldn, epi);
  }

  // Reduce the partial summaries into one per batch (KV^T with padded rows, s_k + eps,
  // S_v) and write `stats` (unpadded, s_k without eps); rows split over the threads.
  static void reduce_summary(const Geo& g, const Partials& p, T eps, bool taylor, T* sum,
                             T* stats, int t, int nt) {
    const int64_t rows = g.B * (g.Cv + 1);
    for (int64_t r = rows * t / nt; r < rows * (t + 1) / nt; ++r) {
      const int64_t b = r / (g.Cv + 1), i = r % (g.Cv + 1);
      T* sb = sum + b * g.part;
      T* st = stats + (b * (g.Cv + 1) + i) * (g.Ck + 1);
      if (i < g.Cv) {
        reduce_row(g, p, b, i * g.ldkv, g.ldkv, sb + i * g.ldkv);
        reduce_row(g, p, b, g.Cv * g.ldkv + g.ldkv + i, 1, sb + g.Cv * g.ldkv + g.ldkv + i);
        std::memcpy(st, sb + i * g.ldkv, sizeof(T) * g.Ck);
        st[g.Ck] = sb[g.Cv * g.ldkv + g.ldkv + i];
        if (taylor) sb[i * g.ldkv + g.Ck] = st[g.Ck];  // within the row's padding
      } else {
        T* sk = sb + g.Cv * g.ldkv;
        reduce_row(g, p, b, g.Cv * g.ldkv, g.ldkv, sk);
        std::memcpy(st, sk, sizeof(T) * g.Ck);
        st[g.Ck] = T(g.N);
        for (int64_t c = 0; c < g.Ck; ++c) sk[c] += eps;
      }
    }
  }

  // One parallel region, three phases split by barriers (every thread reaches each
  // barrier, also one without items): pass 1, the reduction, pass 2.
  static void forward(const FwdArgs<T>& a, int nth) {
    const Geo g = geometry(a.B, a.Ck, a.Cv, a.N, nth);
    nth = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nth, g.items)));
    Partials p(nth);
    std::vector<T> sum(g.B * g.part);
    run_threads(nth, [&](int t, int nt) {
      int64_t i0, i1;
      item_range(g, t, nt, i0, i1);
      FwdScratch s(g);
      if (i0 < i1) {
        p.lo[t] = i0 / g.nblk;
        p.hi[t] = (i1 - 1) / g.nblk;
        p.buf[t].assign((p.hi[t] - p.lo[t] + 1) * g.part, T(0));
        for (int64_t it = i0; it < i1; ++it) {
          const int64_t b = it / g.nblk, n0 = (it % g.nblk) * g.nb;
          summary_block(g, a, b, n0, std::min(g.nb, g.N - n0), s,
                        p.buf[t].data() + (b - p.lo[t]) * g.part);
        }
      }
      barrier();
      reduce_summary(g, p, static_cast<T>(a.eps), a.kind == kTaylor, sum.data(), a.stats, t, nt);
      barrier();
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t b = it / g.nblk, n0 = (it % g.nblk) * g.nb;
        const T* sb = sum.data() + b * g.part;
        output_block(g, a, b, n0, std::min(g.nb, g.N - n0), s, sb, sb + g.Cv * g.ldkv);
      }
    });
  }

  // ---------------------------------------------------------------------------------
  // Backward

  struct BwdScratch {
    std::vector<T> xb, aux, den, dden, tmp, gb, xt, dphi;
    BwdScratch(const Geo& g, int kind)
        : xb(g.Ck * g.ldn),
          aux(kind == kTaylor ? g.ldn : g.Ck * g.ldn),
          den(g.ldn),
          dden(g.ldn),
          tmp(g.ldn),
          gb(g.Cv * g.ldn),
          xt(g.nb * g.ldt, T(0)),
          dphi(g.Ck * g.ldn) {}
  };

  // Pass A on one block: dq, and the partial dKV^T (Cv x ckp), ds_k, dS_v.
  static void bwd_q_block(const Geo& g, const BwdArgs<T>& a, int64_t b, int64_t n0, int64_t nbv,
                          BwdScratch& s, const T* kv, const T* ske, T* part) {
    const int64_t nbp = round_up(nbv, VW);
    const bool taylor = a.kind == kTaylor;
    T* dkvt = part;
    T* dsk = part + g.Cv * g.ldkv;
    T* dsv = dsk + g.ldkv;
    T* qb = s.xb.data();
    load_feature(a.q + b * g.Ck * g.N + n0, g.N, g.Ck, nbv, nbp, qb, g.ldn, a.kind, s.aux.data(),
                 nullptr);
    T* rden = s.den.data();
    const T base = taylor ? T(g.N) : T(0);
    for (int64_t n = 0; n < nbp; ++n) rden[n] = base;
    for (int64_t c = 0; c < g.Ck; ++c) {
      const T w = ske[c];
      const T* r = qb + c * g.ldn;
      for (int64_t n = 0; n < nbp; ++n) rden[n] += w * r[n];
    }
    for (int64_t n = 0; n < nbp; ++n) rden[n] = T(1) / rden[n];
    // gb = dnum = g / den; dden = -sum_c dnum * out
    T* gb = s.gb.data();
    T* dden = s.dden.data();
    for (int64_t n = 0; n < nbp; ++n) dden[n] = T(0);
    const T* dout = a.dout + b * g.Cv * g.N + n0;
    const T* out = a.out + b * g.Cv * g.N + n0;
    for (int64_t c = 0; c < g.Cv; ++c) {
      T* gr = gb + c * g.ldn;
      const T* grow = dout + c * g.N;
      const T* orow = out + c * g.N;
      for (int64_t n = 0; n < nbv; ++n) {
        gr[n] = grow[n] * rden[n];
        dden[n] -= gr[n] * orow[n];
      }
      for (int64_t n = nbv; n < nbp; ++n) gr[n] = T(0);
      if (taylor) dsv[c] += row_sum(gr, nbp);
    }
    for (int64_t c = 0; c < g.Ck; ++c) dsk[c] += row_dot(qb + c * g.ldn, dden, nbp);
    transpose(qb, g.ldn, g.Ck, nbv, s.xt.data(), g.ldt);
    AddInto add{dkvt, g.ldkv};
    gemm(g.Cv, g.ckp, nbv, gb, g.ldn, s.xt.data(), g.ldt, add);
    // dphi_q = KV dnum + dden (s_k + eps)
    T* dphi = s.dphi.data();
    auto epi = [&](int64_t i0, int64_t j0, const auto& acc) LA_LAMBDA_INLINE {
      using A = std::decay_t<decltype(acc)>;
      constexpr int M = A::M, NV = A::NV;
      LA_UNROLL for (int i = 0; i < M; ++i) {
        const V w = splat(ske[i0 + i]);
        T* d = dphi + (i0 + i) * g.ldn + j0;
        LA_UNROLL for (int j = 0; j < NV; ++j)
          store(d + j * VW, acc.v[i][j] + w * load(dden + j0 + j * VW));
      }
    };
    gemm(g.Ck, nbp, g.Cv, kv, g.ldcv, gb, g.ldn, epi);
    feature_bwd(qb, dphi, g.Ck, g.ldn, nbv, nbp, a.kind, s.aux.data(), s.tmp.data(),
                a.dq + b * g.Ck * g.N + n0, g.N);
  }

  // Pass B on one block: dk and dv.
  static void bwd_kv_block(const Geo& g, const BwdArgs<T>& a, int64_t b, int64_t n0, int64_t nbv,
                           BwdScratch& s, const T* dkv, const T* dkvt, const T* dsk, const T* dsv) {
    const int64_t nbp = round_up(nbv, VW);
    T* kb = s.xb.data();
    load_feature(a.k + b * g.Ck * g.N + n0, g.N, g.Ck, nbv, nbp, kb, g.ldn, a.kind, s.aux.data(),
                 nullptr);
    T* vb = s.gb.data();
    copy_in(a.v + b * g.Cv * g.N + n0, g.N, g.Cv, nbv, nbp, vb, g.ldn);
    // dphi_k = dKV v + ds_k
    T* dphi = s.dphi.data();
    auto epi_k = [&](int64_t i0, int64_t j0, const auto& acc) LA_LAMBDA_INLINE {
      using A = std::decay_t<decltype(acc)>;
      constexpr int M = A::M, NV = A::NV;
      LA_UNROLL for (int i = 0; i < M; ++i) {
        const V w = splat(dsk[i0 + i]);
        T* d = dphi + (i0 + i) * g.ldn + j0;
        LA_UNROLL for (int j = 0; j < NV; ++j) store(d + j * VW, acc.v[i][j] + w);
      }
    };
    gemm(g.Ck, nbp, g.Cv, dkv, g.ldcv, vb, g.ldn, epi_k);
    feature_bwd(kb, dphi, g.Ck, g.ldn, nbv, nbp, a.kind, s.aux.data(), s.tmp.data(),
                a.dk + b * g.Ck * g.N + n0, g.N);
    // dv = dKV^T phi_k + dS_v
    T* dv = a.dv + b * g.Cv * g.N + n0;
    auto epi_v = [&](int64_t i0, int64_t j0, const auto& acc) LA_LAMBDA_INLINE {
      using A = std::decay_t<decltype(acc)>;
      constexpr int M = A::M, NV = A::NV;
      LA_UNROLL for (int i = 0; i < M; ++i) {
        const V w = splat(dsv[i0 + i]);
        T* d = dv + (i0 + i) * g.N + j0;
        LA_UNROLL for (int j = 0; j < NV; ++j) store_part(d + j * VW, acc.v[i][j] + w, nbv - j0 - j * VW);
      }
    };
    gemm(g.Cv, nbp, g.Ck, dkvt, g.ldkv, kb, g.ldn, epi_v);
  }

  static void backward(const BwdArgs<T>& a, int nth) {
    const Geo g = geometry(a.B, a.Ck, a.Cv, a.N, nth);
    nth = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nth, g.items)));
    const T eps = static_cast<T>(a.eps);
    // KV (Ck x Cv) and s_k + eps per batch, from the forward's stats.
    std::vector<T> kv(g.B * g.Ck * g.ldcv), ske(g.B * g.ldkv, T(0));
    for (int64_t b = 0; b < g.B; ++b) {
      const T* st = a.stats + b * (g.Cv + 1) * (g.Ck + 1);
      for (int64_t i = 0; i < g.Cv; ++i)
        for (int64_t j = 0; j < g.Ck; ++j) kv[(b * g.Ck + j) * g.ldcv + i] = st[i * (g.Ck + 1) + j];
      for (int64_t j = 0; j < g.Ck; ++j) ske[b * g.ldkv + j] = st[g.Cv * (g.Ck + 1) + j] + eps;
    }
    Partials p(nth);
    // dKV^T, ds_k, dS_v per batch (a partial's layout) and dKV = (dKV^T)^T.
    std::vector<T> sum(g.B * g.part), dkv(g.B * g.Ck * g.ldcv);
    run_threads(nth, [&](int t, int nt) {  // pass A, reduction, pass B (see forward)
      int64_t i0, i1;
      item_range(g, t, nt, i0, i1);
      BwdScratch s(g, a.kind);
      if (i0 < i1) {
        p.lo[t] = i0 / g.nblk;
        p.hi[t] = (i1 - 1) / g.nblk;
        p.buf[t].assign((p.hi[t] - p.lo[t] + 1) * g.part, T(0));
        for (int64_t it = i0; it < i1; ++it) {
          const int64_t b = it / g.nblk, n0 = (it % g.nblk) * g.nb;
          bwd_q_block(g, a, b, n0, std::min(g.nb, g.N - n0), s, kv.data() + b * g.Ck * g.ldcv,
                      ske.data() + b * g.ldkv, p.buf[t].data() + (b - p.lo[t]) * g.part);
        }
      }
      barrier();
      for (int64_t b = g.B * t / nt; b < g.B * (t + 1) / nt; ++b) {
        T* sb = sum.data() + b * g.part;
        reduce_row(g, p, b, 0, g.part, sb);
        transpose(sb, g.ldkv, g.Cv, g.Ck, dkv.data() + b * g.Ck * g.ldcv, g.ldcv);
      }
      barrier();
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t b = it / g.nblk, n0 = (it % g.nblk) * g.nb;
        const T* sb = sum.data() + b * g.part;
        bwd_kv_block(g, a, b, n0, std::min(g.nb, g.N - n0), s, dkv.data() + b * g.Ck * g.ldcv,
                     sb, sb + g.Cv * g.ldkv, sb + g.Cv * g.ldkv + g.ldkv);
      }
    });
  }
};

void forward_f32(const FwdArgs<float>& a, int nth) { Impl<float>::forward(a, nth); }
void forward_f64(const FwdArgs<double>& a, int nth) { Impl<double>::forward(a, nth); }
void backward_f32(const BwdArgs<float>& a, int nth) { Impl<float>::backward(a, nth); }
void backward_f64(const BwdArgs<double>& a, int nth) { Impl<double>::backward(a, nth); }
