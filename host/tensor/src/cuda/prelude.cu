// Shared by every NVRTC program of wasmpod's CUDA backend (kernels.cu,
// decoder.cu; see kernels.rs): element types and their conversions, index
// arithmetic, block reductions, and the dtype lists instantiations use. No
// headers are included, so it compiles with any NVRTC without a CUDA
// toolkit installed.
//
// Numerics follow the CPU reference (cpu.rs): floats compute in f32 (sums and
// norms accumulate in f64), f16/bf16 are storage types rounded to nearest-even
// on store, integers compute in i64 and wrap on store, float-to-int casts
// saturate with NaN -> 0 (Rust's `as`).

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

struct f16s { u16 bits; };
struct bf16s { u16 bits; };

#define MAX_DIMS 8
#define INF_F __int_as_float(0x7f800000)

// Dimensions are right-aligned: dims [MAX_DIMS - rank, MAX_DIMS) are used.
// strides[0..3] are element strides of up to three operands, base[] their
// starting element offsets.
struct Layout {
    i64 shape[MAX_DIMS];
    i64 strides[3][MAX_DIMS];
    i64 base[3];
    int rank;
    int pad;
};

template <class T> struct IsFloat { static constexpr bool value = false; };
template <> struct IsFloat<float> { static constexpr bool value = true; };
template <> struct IsFloat<f16s> { static constexpr bool value = true; };
template <> struct IsFloat<bf16s> { static constexpr bool value = true; };

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(f16s x) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
    return f;
}
__device__ __forceinline__ float to_f(bf16s x) { return __uint_as_float(((u32)x.bits) << 16); }
__device__ __forceinline__ float to_f(int x) { return (float)x; }
__device__ __forceinline__ float to_f(i64 x) { return (float)x; }
__device__ __forceinline__ float to_f(u8 x) { return (float)x; }

__device__ __forceinline__ i64 to_i(int x) { return (i64)x; }
__device__ __forceinline__ i64 to_i(i64 x) { return x; }
__device__ __forceinline__ i64 to_i(u8 x) { return (i64)x; }

template <class T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ f16s from_f<f16s>(float x) {
    f16s r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(x));
    return r;
}
template <> __device__ __forceinline__ bf16s from_f<bf16s>(float x) {
    u32 u = __float_as_uint(x);
    bf16s r;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        r.bits = (u16)((u >> 16) | 0x0040u);  // keep NaN a (quiet) NaN
        return r;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    r.bits = (u16)(u >> 16);
    return r;
}
template <> __device__ __forceinline__ int from_f<int>(float x) {
    if (x != x) return 0;
    if (x >= 2147483648.0f) return 2147483647;
    if (x <= -2147483648.0f) return (-2147483647 - 1);
    return (int)x;
}
template <> __device__ __forceinline__ i64 from_f<i64>(float x) {
    if (x != x) return 0;
    if (x >= 9223372036854775808.0f) return 9223372036854775807LL;
    if (x <= -9223372036854775808.0f) return (-9223372036854775807LL - 1);
    return (i64)x;
}
template <> __device__ __forceinline__ u8 from_f<u8>(float x) {
    if (x != x || x <= 0.0f) return 0;
    if (x >= 255.0f) return 255;
    return (u8)x;
}

__device__ __forceinline__ i64 imax(i64 a, i64 b) { return a > b ? a : b; }

// Integer results wrap like Rust's `as` between integer types.
template <class T> __device__ __forceinline__ T from_i(i64 v) {
    if constexpr (IsFloat<T>::value) {
        return from_f<T>((float)v);
    } else {
        return (T)v;
    }
}

// ---------------------------------------------------------------------------
// Index arithmetic

template <class I>
__device__ __forceinline__ void offsets3(const Layout& L, I i, i64& o0, i64& o1, i64& o2) {
    o0 = L.base[0];
    o1 = L.base[1];
    o2 = L.base[2];
    const int first = MAX_DIMS - L.rank;
#pragma unroll
    for (int d = MAX_DIMS - 1; d >= 0; --d) {
        if (d >= first) {
            I s = (I)L.shape[d];
            I q = i / s;
            i64 r = (i64)(i - q * s);
            o0 += r * L.strides[0][d];
            o1 += r * L.strides[1][d];
            o2 += r * L.strides[2][d];
            i = q;
        }
    }
}

#define GRID_STRIDE(i, n) \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (u64)gridDim.x * blockDim.x)

// ---------------------------------------------------------------------------
// Block reductions (blockDim.x is a multiple of 32, at most 1024)

template <class T> __device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

template <class T> __device__ T block_sum(T v) {
    __shared__ T sh[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // an earlier call's readers are done with sh
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? sh[lane] : (T)0;
        v = warp_sum(v);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

// max that propagates NaN, as NumPy's (and the reference's) max reduction
__device__ __forceinline__ float nan_max(float a, float b) { return (a != a || b != b) ? __int_as_float(0x7fffffff) : fmaxf(a, b); }
__device__ __forceinline__ float warp_nan_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Max over the block; with PropagateNan a NaN anywhere wins, otherwise
// NaNs are skipped (f32::max).
template <bool PropagateNan> __device__ float block_max(float v) {
    __shared__ float sh[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = PropagateNan ? warp_nan_max(v) : warp_max(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? sh[lane] : -INF_F;
        v = PropagateNan ? warp_nan_max(v) : warp_max(v);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}


// ---------------------------------------------------------------------------
// Instantiation lists: X(<dtype name>, <C type>)

#define FOR_ALL(X) X(f32, float) X(f16, f16s) X(bf16, bf16s) X(i32, int) X(i64, i64) X(u8, u8)
#define FOR_FLOAT(X) X(f32, float) X(f16, f16s) X(bf16, bf16s)
#define BY_WIDTH(X) X(8, u8) X(16, u16) X(32, u32) X(64, u64)
