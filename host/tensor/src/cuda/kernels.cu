// Kernels of wasmpod's CUDA tensor backend. NVRTC compiles this file after
// prelude.cu (its types and helpers), once per process (see kernels.rs).
//
// Numerics follow the CPU reference (cpu.rs): floats compute in f32 (sums and
// norms accumulate in f64), f16/bf16 are storage types rounded to nearest-even
// on store, integers compute in i64 and wrap on store, float-to-int casts
// saturate with NaN -> 0 (Rust's `as`).

// ---------------------------------------------------------------------------
// Elementwise

// op: 0 add, 1 sub, 2 mul, 3 div. Integer division by zero sets *div_zero
// (the host turns it into an error) and writes 0.
template <class T, class I>
__device__ void binary_k(Layout L, const T* a, const T* b, T* out, u64 n, int op, int* div_zero) {
    GRID_STRIDE(k, n) {
        i64 oa, ob, oo;
        offsets3<I>(L, (I)k, oa, ob, oo);
        if constexpr (IsFloat<T>::value) {
            float x = to_f(a[oa]), y = to_f(b[ob]), r;
            switch (op) {
                case 0: r = x + y; break;
                case 1: r = x - y; break;
                case 2: r = x * y; break;
                default: r = x / y; break;
            }
            out[oo] = from_f<T>(r);
        } else {
            u64 x = (u64)to_i(a[oa]), y = (u64)to_i(b[ob]);
            i64 r;
            switch (op) {
                case 0: r = (i64)(x + y); break;
                case 1: r = (i64)(x - y); break;
                case 2: r = (i64)(x * y); break;
                default:
                    if (y == 0) {
                        atomicExch(div_zero, 1);
                        r = 0;
                    } else if ((i64)y == -1) {
                        r = (i64)(0ull - x);  // wrapping: i64::MIN / -1 == i64::MIN
                    } else {
                        r = (i64)x / (i64)y;
                    }
                    break;
            }
            out[oo] = from_i<T>(r);
        }
    }
}

// op: 0 relu, 1 gelu (erf), 2 silu, 3 tanh
template <class T> __device__ void unary_k(const T* x, T* y, u64 n, int op) {
    GRID_STRIDE(i, n) {
        float v = to_f(x[i]), r;
        switch (op) {
            case 0: r = fmaxf(v, 0.0f); break;
            case 1: r = (float)(0.5 * (double)v * (1.0 + erf((double)v * 0.70710678118654752440))); break;
            case 2: r = v / (1.0f + expf(-v)); break;
            default: r = tanhf(v); break;
        }
        y[i] = from_f<T>(r);
    }
}

template <class T> __device__ void scale_k(const T* x, T* y, u64 n, float factor, float offset) {
    GRID_STRIDE(i, n) { y[i] = from_f<T>(to_f(x[i]) * factor + offset); }
}

template <class S, class D> __device__ void cast_k(const S* x, D* y, u64 n) {
    GRID_STRIDE(i, n) {
        if constexpr (IsFloat<S>::value) {
            y[i] = from_f<D>(to_f(x[i]));
        } else if constexpr (IsFloat<D>::value) {
            y[i] = from_f<D>((float)to_i(x[i]));
        } else {
            y[i] = from_i<D>(to_i(x[i]));
        }
    }
}

// Copies elements of width W between two strided layouts (operand 0 is the
// source, operand 1 the destination): permute, slice and concat.
template <class W, class I> __device__ void copy_k(Layout L, const W* src, W* dst, u64 n) {
    GRID_STRIDE(k, n) {
        i64 os, od, unused;
        offsets3<I>(L, (I)k, os, od, unused);
        dst[od] = src[os];
    }
}

// Rows of `table [rows, dim]` picked by `idx`; an index outside the table
// (the front rejects those) yields zeros rather than a read out of bounds.
template <class W, class X>
__device__ void gather_k(const W* table, const X* idx, W* out, u64 n, i64 dim, i64 rows) {
    GRID_STRIDE(k, n) {
        u64 i = k / (u64)dim, j = k - i * (u64)dim;
        i64 r = to_i(idx[i]);
        out[k] = (r >= 0 && r < rows) ? table[r * dim + j] : (W)0;
    }
}

// ---------------------------------------------------------------------------
// Row kernels: one block per row of `len` contiguous elements (the last axis)
// or one thread per (outer, inner) lane of a strided axis.

template <class T> __device__ void softmax_rows_k(const T* x, T* y, i64 rows, i64 len) {
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * len;
        T* yr = y + r * len;
        float m = -INF_F;
        for (i64 j = threadIdx.x; j < len; j += blockDim.x) m = fmaxf(m, to_f(xr[j]));
        m = block_max<false>(m);
        float s = 0.0f;
        for (i64 j = threadIdx.x; j < len; j += blockDim.x) s += expf(to_f(xr[j]) - m);
        const float inv = 1.0f / block_sum(s);
        for (i64 j = threadIdx.x; j < len; j += blockDim.x) yr[j] = from_f<T>(expf(to_f(xr[j]) - m) * inv);
    }
}

template <class T> __device__ void softmax_lanes_k(const T* x, T* y, i64 outer, i64 len, i64 inner) {
    GRID_STRIDE(k, (u64)(outer * inner)) {
        i64 o = (i64)k / inner, i = (i64)k - o * inner;
        const T* xl = x + o * len * inner + i;
        T* yl = y + o * len * inner + i;
        float m = -INF_F;
        for (i64 j = 0; j < len; ++j) m = fmaxf(m, to_f(xl[j * inner]));
        float s = 0.0f;
        for (i64 j = 0; j < len; ++j) s += expf(to_f(xl[j * inner]) - m);
        const float inv = 1.0f / s;
        for (i64 j = 0; j < len; ++j) yl[j * inner] = from_f<T>(expf(to_f(xl[j * inner]) - m) * inv);
    }
}

// weight and bias may be null.
template <class T>
__device__ void layer_norm_k(const T* x, const T* w, const T* b, T* y, i64 rows, i64 len, float eps) {
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * len;
        T* yr = y + r * len;
        double s = 0.0;
        for (i64 j = threadIdx.x; j < len; j += blockDim.x) s += (double)to_f(xr[j]);
        const double mean = block_sum(s) / (double)len;
        double v = 0.0;
        for (i64 j = threadIdx.x; j < len; j += blockDim.x) {
            double d = (double)to_f(xr[j]) - mean;
            v += d * d;
        }
        const double var = block_sum(v) / (double)len;
        const double inv = 1.0 / sqrt(var + (double)eps);
        for (i64 j = threadIdx.x; j < len; j += blockDim.x) {
            float o = (float)(((double)to_f(xr[j]) - mean) * inv);
            if (w) o *= to_f(w[j]);
            if (b) o += to_f(b[j]);
            yr[j] = from_f<T>(o);
        }
    }
}

template <class T> __device__ void rms_norm_k(const T* x, const T* w, T* y, i64 rows, i64 len, float eps) {
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * len;
        T* yr = y + r * len;
        double s = 0.0;
        for (i64 j = threadIdx.x; j < len; j += blockDim.x) {
            double d = (double)to_f(xr[j]);
            s += d * d;
        }
        const double ms = block_sum(s) / (double)len;
        const float inv = (float)(1.0 / sqrt(ms + (double)eps));
        for (i64 j = threadIdx.x; j < len; j += blockDim.x) {
            float o = to_f(xr[j]) * (inv * (w ? to_f(w[j]) : 1.0f));
            yr[j] = from_f<T>(o);
        }
    }
}

// op: 0 sum, 1 mean, 2 max. Float sums accumulate in f64, integer ones in
// wrapping i64.
template <class T> __device__ __forceinline__ T reduce_finish_f(double acc, float mx, i64 len, int op) {
    if (op == 2) return from_f<T>(mx);
    if (op == 1) return from_f<T>((float)(acc / (double)len));
    return from_f<T>((float)acc);
}

template <class T> __device__ void reduce_rows_k(const T* x, T* y, i64 rows, i64 len, int op) {
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * len;
        if constexpr (IsFloat<T>::value) {
            double s = 0.0;
            float m = -INF_F;
            for (i64 j = threadIdx.x; j < len; j += blockDim.x) {
                float v = to_f(xr[j]);
                s += (double)v;
                m = nan_max(m, v);
            }
            if (op == 2) {
                m = block_max<true>(m);
            } else {
                s = block_sum(s);
            }
            if (threadIdx.x == 0) y[r] = reduce_finish_f<T>(s, m, len, op);
        } else {
            if (op == 2) {
                // Max of integers: reduce i64 through shared memory.
                __shared__ i64 sh[1024];
                i64 m = (-9223372036854775807LL - 1);
                for (i64 j = threadIdx.x; j < len; j += blockDim.x) m = imax(m, to_i(xr[j]));
                sh[threadIdx.x] = m;
                __syncthreads();
                for (int step = blockDim.x / 2; step > 0; step >>= 1) {
                    if (threadIdx.x < step) sh[threadIdx.x] = imax(sh[threadIdx.x], sh[threadIdx.x + step]);
                    __syncthreads();
                }
                if (threadIdx.x == 0) y[r] = from_i<T>(sh[0]);
                __syncthreads();
            } else {
                u64 s = 0;
                for (i64 j = threadIdx.x; j < len; j += blockDim.x) s += (u64)to_i(xr[j]);
                s = block_sum(s);
                if (threadIdx.x == 0) y[r] = from_i<T>((i64)s);
            }
        }
    }
}

template <class T> __device__ void reduce_lanes_k(const T* x, T* y, i64 outer, i64 len, i64 inner, int op) {
    GRID_STRIDE(k, (u64)(outer * inner)) {
        i64 o = (i64)k / inner, i = (i64)k - o * inner;
        const T* xl = x + o * len * inner + i;
        if constexpr (IsFloat<T>::value) {
            double s = 0.0;
            float m = -INF_F;
            for (i64 j = 0; j < len; ++j) {
                float v = to_f(xl[j * inner]);
                s += (double)v;
                m = nan_max(m, v);
            }
            y[k] = reduce_finish_f<T>(s, m, len, op);
        } else {
            u64 s = 0;
            i64 m = (-9223372036854775807LL - 1);
            for (i64 j = 0; j < len; ++j) {
                i64 v = to_i(xl[j * inner]);
                s += (u64)v;
                m = imax(m, v);
            }
            y[k] = from_i<T>(op == 2 ? m : (i64)s);
        }
    }
}

// ---------------------------------------------------------------------------
// argmax / top-k. Keys compare as f32 (floats) or i64 (integers) in the
// reference's total order: NaN ranks above every number (so it is reported,
// as NumPy's argmax does), equal keys rank by lower index.

template <class T> struct Key { typedef i64 type; };
template <> struct Key<float> { typedef float type; };
template <> struct Key<f16s> { typedef float type; };
template <> struct Key<bf16s> { typedef float type; };

template <class T> __device__ __forceinline__ typename Key<T>::type key_of(T x) {
    if constexpr (IsFloat<T>::value) {
        return to_f(x);
    } else {
        return to_i(x);
    }
}
__device__ __forceinline__ bool is_nan(float v) { return v != v; }
__device__ __forceinline__ bool is_nan(i64) { return false; }

// True if (va, ia) ranks before (vb, ib): NaN first, then larger values,
// ties by lower index. Index -1 means "no candidate".
template <class K> __device__ __forceinline__ bool ranks_before(K va, i64 ia, K vb, i64 ib) {
    if (ia < 0) return false;
    if (ib < 0) return true;
    bool na = is_nan(va), nb = is_nan(vb);
    if (na != nb) return na;
    if (na) return ia < ib;
    return va > vb || (va == vb && ia < ib);
}

template <class K> __device__ void block_best(K& v, i64& idx) {
    __shared__ K sv[1024];
    __shared__ i64 si[1024];
    sv[threadIdx.x] = v;
    si[threadIdx.x] = idx;
    __syncthreads();
    for (int step = blockDim.x / 2; step > 0; step >>= 1) {
        if (threadIdx.x < step && ranks_before(sv[threadIdx.x + step], si[threadIdx.x + step], sv[threadIdx.x], si[threadIdx.x])) {
            sv[threadIdx.x] = sv[threadIdx.x + step];
            si[threadIdx.x] = si[threadIdx.x + step];
        }
        __syncthreads();
    }
    v = sv[0];
    idx = si[0];
    __syncthreads();
}

template <class T> __device__ void argmax_rows_k(const T* x, i64* y, i64 rows, i64 len) {
    typedef typename Key<T>::type K;
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * len;
        K best = key_of(xr[0]);
        i64 at = -1;
        for (i64 j = threadIdx.x; j < len; j += blockDim.x) {
            K v = key_of(xr[j]);
            if (ranks_before(v, j, best, at)) {
                best = v;
                at = j;
            }
        }
        block_best(best, at);
        if (threadIdx.x == 0) y[r] = at < 0 ? 0 : at;
    }
}

template <class T> __device__ void argmax_lanes_k(const T* x, i64* y, i64 outer, i64 len, i64 inner) {
    GRID_STRIDE(k, (u64)(outer * inner)) {
        i64 o = (i64)k / inner, i = (i64)k - o * inner;
        const T* xl = x + o * len * inner + i;
        i64 best = 0;
        auto bv = key_of(xl[0]);
        for (i64 j = 1; j < len; ++j) {
            auto v = key_of(xl[j * inner]);
            if (ranks_before(v, j, bv, best)) {
                bv = v;
                best = j;
            }
        }
        y[k] = best;
    }
}

// k passes per row, each picking the best element ranked after the previous
// pick: O(k * len) reads, fine for the k of sampling and classification.
template <class T> __device__ void top_k_rows_k(const T* x, T* vals, i64* idxs, i64 rows, i64 len, i64 k) {
    typedef typename Key<T>::type K;
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * len;
        K prev_v = K(0);
        i64 prev_i = -1;
        for (i64 t = 0; t < k; ++t) {
            K best = K(0);
            i64 at = -1;
            for (i64 j = threadIdx.x; j < len; j += blockDim.x) {
                K v = key_of(xr[j]);
                bool after_prev = prev_i < 0 || ranks_before(prev_v, prev_i, v, j);
                if (after_prev && ranks_before(v, j, best, at)) {
                    best = v;
                    at = j;
                }
            }
            block_best(best, at);
            if (threadIdx.x == 0) {
                vals[r * k + t] = xr[at];
                idxs[r * k + t] = at;
            }
            prev_v = best;
            prev_i = at;
        }
    }
}

// ---------------------------------------------------------------------------
// Instantiations with C names: <kernel>_<dtype>[_<dtype or index width>]


#define BINARY(N, T)                                                                                       \
    extern "C" __global__ void binary_##N##_u32(Layout L, const T* a, const T* b, T* o, u64 n, int op, int* z) { \
        binary_k<T, u32>(L, a, b, o, n, op, z);                                                            \
    }                                                                                                      \
    extern "C" __global__ void binary_##N##_u64(Layout L, const T* a, const T* b, T* o, u64 n, int op, int* z) { \
        binary_k<T, u64>(L, a, b, o, n, op, z);                                                            \
    }
FOR_ALL(BINARY)

#define FLOAT_OPS(N, T)                                                                                    \
    extern "C" __global__ void unary_##N(const T* x, T* y, u64 n, int op) { unary_k<T>(x, y, n, op); }    \
    extern "C" __global__ void scale_##N(const T* x, T* y, u64 n, float f, float o) { scale_k<T>(x, y, n, f, o); } \
    extern "C" __global__ void softmax_rows_##N(const T* x, T* y, i64 rows, i64 len) {                    \
        softmax_rows_k<T>(x, y, rows, len);                                                                \
    }                                                                                                      \
    extern "C" __global__ void softmax_lanes_##N(const T* x, T* y, i64 outer, i64 len, i64 inner) {       \
        softmax_lanes_k<T>(x, y, outer, len, inner);                                                       \
    }                                                                                                      \
    extern "C" __global__ void layer_norm_##N(const T* x, const T* w, const T* b, T* y, i64 rows, i64 len, float eps) { \
        layer_norm_k<T>(x, w, b, y, rows, len, eps);                                                       \
    }                                                                                                      \
    extern "C" __global__ void rms_norm_##N(const T* x, const T* w, T* y, i64 rows, i64 len, float eps) { \
        rms_norm_k<T>(x, w, y, rows, len, eps);                                                            \
    }
FOR_FLOAT(FLOAT_OPS)

#define ANY_OPS(N, T)                                                                                      \
    extern "C" __global__ void reduce_rows_##N(const T* x, T* y, i64 rows, i64 len, int op) {            \
        reduce_rows_k<T>(x, y, rows, len, op);                                                             \
    }                                                                                                      \
    extern "C" __global__ void reduce_lanes_##N(const T* x, T* y, i64 outer, i64 len, i64 inner, int op) { \
        reduce_lanes_k<T>(x, y, outer, len, inner, op);                                                    \
    }                                                                                                      \
    extern "C" __global__ void argmax_rows_##N(const T* x, i64* y, i64 rows, i64 len) {                   \
        argmax_rows_k<T>(x, y, rows, len);                                                                 \
    }                                                                                                      \
    extern "C" __global__ void argmax_lanes_##N(const T* x, i64* y, i64 outer, i64 len, i64 inner) {      \
        argmax_lanes_k<T>(x, y, outer, len, inner);                                                        \
    }                                                                                                      \
    extern "C" __global__ void top_k_##N(const T* x, T* v, i64* i, i64 rows, i64 len, i64 k) {            \
        top_k_rows_k<T>(x, v, i, rows, len, k);                                                            \
    }
FOR_ALL(ANY_OPS)

#define CAST_TO(S, SN, D, DN) \
    extern "C" __global__ void cast_##SN##_##DN(const S* x, D* y, u64 n) { cast_k<S, D>(x, y, n); }
#define CAST_FROM(SN, S)          \
    CAST_TO(S, SN, float, f32)    \
    CAST_TO(S, SN, f16s, f16)     \
    CAST_TO(S, SN, bf16s, bf16)   \
    CAST_TO(S, SN, int, i32)      \
    CAST_TO(S, SN, i64, i64)      \
    CAST_TO(S, SN, u8, u8)
FOR_ALL(CAST_FROM)

#define COPY(B, W)                                                                                         \
    extern "C" __global__ void copy_w##B##_u32(Layout L, const W* s, W* d, u64 n) { copy_k<W, u32>(L, s, d, n); } \
    extern "C" __global__ void copy_w##B##_u64(Layout L, const W* s, W* d, u64 n) { copy_k<W, u64>(L, s, d, n); } \
    extern "C" __global__ void gather_w##B##_i32(const W* t, const int* x, W* o, u64 n, i64 dim, i64 rows) { \
        gather_k<W, int>(t, x, o, n, dim, rows);                                                           \
    }                                                                                                      \
    extern "C" __global__ void gather_w##B##_i64(const W* t, const i64* x, W* o, u64 n, i64 dim, i64 rows) { \
        gather_k<W, i64>(t, x, o, n, dim, rows);                                                           \
    }                                                                                                      \
    extern "C" __global__ void gather_w##B##_u8(const W* t, const u8* x, W* o, u64 n, i64 dim, i64 rows) { \
        gather_k<W, u8>(t, x, o, n, dim, rows);                                                            \
    }
BY_WIDTH(COPY)
