// ---------------------------------------------------------------------------
// Image ops and the elementwise long tail (convolution helpers, pooling,
// padding, group norm, resampling, math, comparisons, where, cumsum, ranges,
// Philox random numbers). kernels.rs compiles this file appended to
// kernels.cu, so the helpers there (to_f, from_f, Layout, offsets3,
// block_sum, GRID_STRIDE) are in scope. Index rules mirror
// host/tensor/src/image/spec.rs and math/philox.rs, the CPU reference.

// Mirrors cuda::backend::image::ConvGeom (all i64 but the last two).
struct ConvGeom {
    i64 n, c, h, w, o, kh, kw, sy, sx, py, px, dy, dx, groups, oh, ow;
    int nhwc;
    int pad;
};

__device__ __forceinline__ float activate(float v, int act) {
    switch (act) {
        case 1: return fmaxf(v, 0.0f);
        case 2: return v / (1.0f + expf(-v));
        case 3: return (float)(0.5 * (double)v * (1.0 + erf((double)v * 0.70710678118654752440)));
        default: return v;
    }
}

// Column matrix of group `group` for every image: row (n, pixel), column
// (ci, ky, kx) for NCHW or (ky, kx, ci) for NHWC (each layout's weight
// order); zeros where a patch reads padding.
template <class T> __device__ void im2col_k(ConvGeom g, const T* x, T* cols, i64 group, u64 total) {
    const i64 cg = g.c / g.groups, K = cg * g.kh * g.kw, P = g.oh * g.ow;
    GRID_STRIDE(idx, total) {
        const i64 k = (i64)(idx % (u64)K), row = (i64)(idx / (u64)K);
        const i64 n = row / P, p = row - n * P;
        const i64 oy = p / g.ow, ox = p - oy * g.ow;
        i64 ci, ky, kx;
        if (g.nhwc) {
            ci = k % cg;
            const i64 r = k / cg;
            ky = r / g.kw;
            kx = r - ky * g.kw;
        } else {
            ci = k / (g.kh * g.kw);
            const i64 r = k - ci * g.kh * g.kw;
            ky = r / g.kw;
            kx = r - ky * g.kw;
        }
        const i64 iy = oy * g.sy - g.py + ky * g.dy, ix = ox * g.sx - g.px + kx * g.dx;
        T v = from_f<T>(0.0f);
        if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) {
            const i64 c = group * cg + ci;
            const i64 at = g.nhwc ? ((n * g.h + iy) * g.w + ix) * g.c + c : ((n * g.c + c) * g.h + iy) * g.w + ix;
            v = x[at];
        }
        cols[idx] = v;
    }
}

// y = act(y + bias[channel] + residual), in place. bias and res may be null.
template <class T>
__device__ void epilogue_k(T* y, const T* bias, const T* res, u64 n, i64 channels, i64 spatial, int nhwc, int act) {
    GRID_STRIDE(i, n) {
        float v = to_f(y[i]);
        if (bias) {
            const i64 c = nhwc ? (i64)(i % (u64)channels) : (i64)((i / (u64)spatial) % (u64)channels);
            v += to_f(bias[c]);
        }
        if (res) v += to_f(res[i]);
        y[i] = from_f<T>(activate(v, act));
    }
}

// Transposed convolution, second half: gathers the columns
// cols[n][(iy * w + ix) * R + co * kh * kw + ky * kw + kx] (R = O/g * kh * kw)
// of group `group` that land on each output pixel (NCHW).
template <class T> __device__ void col2im_k(ConvGeom g, const T* cols, T* out, i64 group, u64 total) {
    const i64 cog = g.o / g.groups, kk = g.kh * g.kw, R = cog * kk, pin = g.h * g.w;
    GRID_STRIDE(idx, total) {
        i64 r = (i64)idx;
        const i64 ox = r % g.ow;
        r /= g.ow;
        const i64 oy = r % g.oh;
        r /= g.oh;
        const i64 co = r % cog;
        const i64 n = r / cog;
        float acc = 0.0f;
        for (i64 ky = 0; ky < g.kh; ++ky) {
            const i64 ty = oy + g.py - ky * g.dy;
            if (ty < 0 || ty % g.sy != 0) continue;
            const i64 iy = ty / g.sy;
            if (iy >= g.h) continue;
            for (i64 kx = 0; kx < g.kw; ++kx) {
                const i64 tx = ox + g.px - kx * g.dx;
                if (tx < 0 || tx % g.sx != 0) continue;
                const i64 ix = tx / g.sx;
                if (ix >= g.w) continue;
                acc += to_f(cols[(n * pin + iy * g.w + ix) * R + co * kk + ky * g.kw + kx]);
            }
        }
        out[((n * g.o + group * cog + co) * g.oh + oy) * g.ow + ox] = from_f<T>(acc);
    }
}

// Mirrors cuda::backend::image::PoolGeom. kind: 0 max, 1 avg (real
// positions), 2 avg (padding counted), 3 adaptive avg.
struct PoolGeom {
    i64 n, c, h, w, kh, kw, sy, sx, py, px, oh, ow;
    int kind;
    int nhwc;
};

__device__ __forceinline__ void pool_window(i64 o, i64 len, i64 out, i64 k, i64 s, i64 p, int kind, i64& start,
                                            i64& end, i64& count) {
    if (kind == 3) {
        start = o * len / out;
        end = ((o + 1) * len + out - 1) / out;
        count = end - start;
        return;
    }
    i64 st = o * s - p;
    i64 en = st + k < len + p ? st + k : len + p;
    const i64 padded = en - st;
    st = st > 0 ? st : 0;
    en = en > 0 ? en : 0;
    en = en < len ? en : len;
    count = kind == 2 ? padded : (en > st ? en - st : 0);
    start = st;
    end = en;
}

template <class T> __device__ void pool_k(PoolGeom g, const T* x, T* y, u64 total) {
    GRID_STRIDE(idx, total) {
        i64 r = (i64)idx, c, oy, ox, n;
        if (g.nhwc) {
            c = r % g.c;
            r /= g.c;
            ox = r % g.ow;
            r /= g.ow;
            oy = r % g.oh;
            n = r / g.oh;
        } else {
            ox = r % g.ow;
            r /= g.ow;
            oy = r % g.oh;
            r /= g.oh;
            c = r % g.c;
            n = r / g.c;
        }
        i64 y0, y1, cy, x0, x1, cx;
        pool_window(oy, g.h, g.oh, g.kh, g.sy, g.py, g.kind, y0, y1, cy);
        pool_window(ox, g.w, g.ow, g.kw, g.sx, g.px, g.kind, x0, x1, cx);
        const i64 sc = g.nhwc ? 1 : g.h * g.w, sh = g.nhwc ? g.w * g.c : g.w, sw = g.nhwc ? g.c : 1;
        const T* base = x + n * g.c * g.h * g.w + c * sc;
        float v;
        if (g.kind == 0) {
            v = -INF_F;
            for (i64 iy = y0; iy < y1; ++iy)
                for (i64 ix = x0; ix < x1; ++ix) {
                    const float e = to_f(base[iy * sh + ix * sw]);
                    v = (v != v || e != e) ? __int_as_float(0x7fffffff) : fmaxf(v, e);
                }
        } else {
            float s = 0.0f;
            for (i64 iy = y0; iy < y1; ++iy)
                for (i64 ix = x0; ix < x1; ++ix) s += to_f(base[iy * sh + ix * sw]);
            const i64 count = cy * cx;
            v = count == 0 ? 0.0f : s / (float)count;
        }
        y[idx] = from_f<T>(v);
    }
}

// Mirrors cuda::backend::image::PadGeom (dims left-aligned, `rank` used).
// mode: 0 constant, 1 reflect, 2 replicate.
struct PadGeom {
    i64 in_shape[MAX_DIMS];
    i64 before[MAX_DIMS];
    i64 out_shape[MAX_DIMS];
    int rank;
    int mode;
};

template <class W> __device__ void pad_k(PadGeom g, const W* x, W* y, u64 total, W fill) {
    GRID_STRIDE(idx, total) {
        i64 rem = (i64)idx, src = 0, stride = 1;
        bool inside = true;
        for (int d = g.rank - 1; d >= 0; --d) {
            const i64 o = rem % g.out_shape[d];
            rem /= g.out_shape[d];
            const i64 len = g.in_shape[d];
            i64 xx = o - g.before[d];
            if (xx < 0 || xx >= len) {
                if (g.mode == 0) {
                    inside = false;
                } else if (g.mode == 2) {
                    xx = xx < 0 ? 0 : len - 1;
                } else {
                    xx = xx < 0 ? -xx : 2 * (len - 1) - xx;
                }
            }
            src += xx * stride;
            stride *= len;
        }
        y[idx] = inside ? x[src] : fill;
    }
}

// Mirrors cuda::backend::image::GnGeom.
struct GnGeom {
    i64 n, c, spatial, groups;
    float eps;
    int nhwc;
    int act;
    int pad;
};

// One block per (image, group): sum and sum of squares in f64, then the
// normalised, scaled, shifted and activated values. Members are visited in
// memory order of each layout so reads coalesce.
template <class T> __device__ void group_norm_k(GnGeom g, const T* x, const T* w, const T* b, T* y) {
    const i64 cg = g.c / g.groups, members = cg * g.spatial;
    for (i64 ng = blockIdx.x; ng < g.n * g.groups; ng += gridDim.x) {
        const i64 n = ng / g.groups, grp = ng - n * g.groups;
        const T* img = x + n * g.c * g.spatial;
        T* out = y + n * g.c * g.spatial;
        double s = 0.0, ss = 0.0;
        for (i64 j = threadIdx.x; j < members; j += blockDim.x) {
            i64 at;
            if (g.nhwc) {
                at = (j / cg) * g.c + grp * cg + j % cg;
            } else {
                at = (grp * cg) * g.spatial + j;
            }
            const double v = (double)to_f(img[at]);
            s += v;
            ss += v * v;
        }
        s = block_sum(s);
        ss = block_sum(ss);
        const double mean = s / (double)members;
        double var = ss / (double)members - mean * mean;
        var = var > 0.0 ? var : 0.0;
        const double inv = 1.0 / sqrt(var + (double)g.eps);
        for (i64 j = threadIdx.x; j < members; j += blockDim.x) {
            i64 at, c;
            if (g.nhwc) {
                c = grp * cg + j % cg;
                at = (j / cg) * g.c + c;
            } else {
                c = grp * cg + j / g.spatial;
                at = (grp * cg) * g.spatial + j;
            }
            float v = (float)(((double)to_f(img[at]) - mean) * inv);
            if (w) v *= to_f(w[c]);
            if (b) v += to_f(b[c]);
            out[at] = from_f<T>(activate(v, g.act));
        }
    }
}

// Mirrors cuda::backend::image::ResizeGeom.
struct ResizeGeom {
    i64 n, c, h, w, oh, ow;
    int nhwc;
    int align_corners;
};

__device__ __forceinline__ i64 nearest_src(i64 len, i64 out, i64 o) {
    const float scale = (float)len / (float)out;
    const i64 s = (i64)floorf(__fmul_rn((float)o, scale));
    return s < len - 1 ? s : len - 1;
}

__device__ __forceinline__ void linear_src(i64 len, i64 out, i64 o, int align, i64& i0, i64& i1, float& l) {
    float src;
    if (align) {
        const float scale = out > 1 ? (float)(len - 1) / (float)(out - 1) : 0.0f;
        src = __fmul_rn((float)o, scale);
    } else {
        const float scale = (float)len / (float)out;
        src = __fadd_rn(__fmul_rn(scale, __fadd_rn((float)o, 0.5f)), -0.5f);
        src = src > 0.0f ? src : 0.0f;
    }
    i0 = (i64)src;
    i0 = i0 < len - 1 ? i0 : len - 1;
    i1 = i0 + 1 < len - 1 ? i0 + 1 : len - 1;
    l = __fadd_rn(src, -(float)i0);
}

__device__ __forceinline__ void resize_decode(const ResizeGeom& g, u64 idx, i64& n, i64& c, i64& oy, i64& ox) {
    i64 r = (i64)idx;
    if (g.nhwc) {
        c = r % g.c;
        r /= g.c;
        ox = r % g.ow;
        r /= g.ow;
        oy = r % g.oh;
        n = r / g.oh;
    } else {
        ox = r % g.ow;
        r /= g.ow;
        oy = r % g.oh;
        r /= g.oh;
        c = r % g.c;
        n = r / g.c;
    }
}

__device__ __forceinline__ i64 resize_at(const ResizeGeom& g, i64 n, i64 c, i64 iy, i64 ix) {
    return g.nhwc ? ((n * g.h + iy) * g.w + ix) * g.c + c : ((n * g.c + c) * g.h + iy) * g.w + ix;
}

template <class W> __device__ void nearest_k(ResizeGeom g, const W* x, W* y, u64 total) {
    GRID_STRIDE(idx, total) {
        i64 n, c, oy, ox;
        resize_decode(g, idx, n, c, oy, ox);
        y[idx] = x[resize_at(g, n, c, nearest_src(g.h, g.oh, oy), nearest_src(g.w, g.ow, ox))];
    }
}

template <class T> __device__ void bilinear_k(ResizeGeom g, const T* x, T* y, u64 total) {
    GRID_STRIDE(idx, total) {
        i64 n, c, oy, ox, y0, y1, x0, x1;
        float ly, lx;
        resize_decode(g, idx, n, c, oy, ox);
        linear_src(g.h, g.oh, oy, g.align_corners, y0, y1, ly);
        linear_src(g.w, g.ow, ox, g.align_corners, x0, x1, lx);
        const float a = to_f(x[resize_at(g, n, c, y0, x0)]), b = to_f(x[resize_at(g, n, c, y0, x1)]);
        const float cc = to_f(x[resize_at(g, n, c, y1, x0)]), d = to_f(x[resize_at(g, n, c, y1, x1)]);
        const float top = a * (1.0f - lx) + b * lx, bottom = cc * (1.0f - lx) + d * lx;
        y[idx] = from_f<T>(top * (1.0f - ly) + bottom * ly);
    }
}

// ---------------------------------------------------------------------------
// The elementwise long tail. math op: 0 exp, 1 log, 2 sqrt, 3 rsqrt, 4 abs,
// 5 neg, 6 sigmoid, 7 sin, 8 cos (integers: abs and neg, wrapping).

template <class T> __device__ void math_k(const T* x, T* y, u64 n, int op) {
    GRID_STRIDE(i, n) {
        if constexpr (IsFloat<T>::value) {
            const float v = to_f(x[i]);
            float r;
            switch (op) {
                case 0: r = expf(v); break;
                case 1: r = logf(v); break;
                case 2: r = sqrtf(v); break;
                case 3: r = 1.0f / sqrtf(v); break;
                case 4: r = fabsf(v); break;
                case 5: r = -v; break;
                case 6: r = 1.0f / (1.0f + expf(-v)); break;
                case 7: r = sinf(v); break;
                default: r = cosf(v); break;
            }
            y[i] = from_f<T>(r);
        } else {
            const i64 v = to_i(x[i]);
            const i64 neg = (i64)(0ull - (u64)v);
            y[i] = from_i<T>(op == 4 ? (v < 0 ? neg : v) : neg);
        }
    }
}

// lo/hi are -inf/inf (floats) or the i64 extremes (integers) when absent.
template <class T> __device__ void clamp_k(const T* x, T* y, u64 n, float lo, float hi, i64 ilo, i64 ihi) {
    GRID_STRIDE(i, n) {
        if constexpr (IsFloat<T>::value) {
            const float v = to_f(x[i]);
            y[i] = from_f<T>(v != v ? v : fminf(fmaxf(v, lo), hi));
        } else {
            const i64 v = to_i(x[i]);
            y[i] = from_i<T>(v < ilo ? ilo : (v > ihi ? ihi : v));
        }
    }
}

// op: 0 pow (floats), 1 minimum, 2 maximum (NaN wins).
template <class T, class I> __device__ void pair_k(Layout L, const T* a, const T* b, T* out, u64 n, int op) {
    GRID_STRIDE(k, n) {
        i64 oa, ob, oo;
        offsets3<I>(L, (I)k, oa, ob, oo);
        if constexpr (IsFloat<T>::value) {
            const float x = to_f(a[oa]), y = to_f(b[ob]);
            float r;
            if (op == 0) {
                r = powf(x, y);
            } else if (x != x || y != y) {
                r = __int_as_float(0x7fffffff);
            } else {
                r = op == 1 ? fminf(x, y) : fmaxf(x, y);
            }
            out[oo] = from_f<T>(r);
        } else {
            const i64 x = to_i(a[oa]), y = to_i(b[ob]);
            out[oo] = from_i<T>(op == 1 ? (x < y ? x : y) : (x > y ? x : y));
        }
    }
}

template <class K> __device__ __forceinline__ bool compare_holds(K x, K y, int op) {
    switch (op) {
        case 0: return x == y;
        case 1: return x != y;
        case 2: return x < y;
        case 3: return x <= y;
        case 4: return x > y;
        default: return x >= y;
    }
}

// op: 0 eq, 1 ne, 2 lt, 3 le, 4 gt, 5 ge; u8 results.
template <class T, class I> __device__ void compare_k(Layout L, const T* a, const T* b, u8* out, u64 n, int op) {
    GRID_STRIDE(k, n) {
        i64 oa, ob, oo;
        offsets3<I>(L, (I)k, oa, ob, oo);
        bool r;
        if constexpr (IsFloat<T>::value) {
            r = compare_holds(to_f(a[oa]), to_f(b[ob]), op);
        } else {
            r = compare_holds(to_i(a[oa]), to_i(b[ob]), op);
        }
        out[oo] = r ? 1 : 0;
    }
}

template <class C> __device__ __forceinline__ bool truthy(C v) {
    if constexpr (IsFloat<C>::value) {
        return to_f(v) != 0.0f;
    } else {
        return to_i(v) != 0;
    }
}

// where: operand 0 is the condition, 1 and 2 the choices; the output is
// contiguous, element out_base + k.
template <class C, class W, class I>
__device__ void select_k(Layout L, const C* c, const W* a, const W* b, W* out, u64 n, u64 out_base) {
    GRID_STRIDE(k, n) {
        i64 oc, oa, ob;
        offsets3<I>(L, (I)k, oc, oa, ob);
        out[out_base + k] = truthy(c[oc]) ? a[oa] : b[ob];
    }
}

// One thread per (outer, inner) lane walks the axis; floats sum in f64,
// integers in wrapping i64.
template <class T> __device__ void cumsum_k(const T* x, T* y, i64 outer, i64 len, i64 inner) {
    GRID_STRIDE(k, (u64)(outer * inner)) {
        const i64 o = (i64)k / inner, i = (i64)k - o * inner;
        if constexpr (IsFloat<T>::value) {
            double acc = 0.0;
            for (i64 j = 0; j < len; ++j) {
                const i64 at = (o * len + j) * inner + i;
                acc += (double)to_f(x[at]);
                y[at] = from_f<T>((float)acc);
            }
        } else {
            u64 acc = 0;
            for (i64 j = 0; j < len; ++j) {
                const i64 at = (o * len + j) * inner + i;
                acc += (u64)to_i(x[at]);
                y[at] = from_i<T>((i64)acc);
            }
        }
    }
}

// arange (linspace = 0): start + i * step; linspace: PyTorch's symmetric
// formula. Rounded multiplies and adds, so the values equal the CPU's.
template <class T> __device__ void range_k(T* y, u64 n, double start, double step, double end, int linspace) {
    GRID_STRIDE(i, n) {
        double v;
        if (!linspace) {
            v = __dadd_rn(start, __dmul_rn((double)i, step));
        } else if (n == 1) {
            v = start;
        } else {
            const double st = (end - start) / (double)(n - 1);
            v = i < n / 2 ? __dadd_rn(start, __dmul_rn((double)i, st))
                          : __dadd_rn(end, -__dmul_rn((double)(n - 1 - i), st));
        }
        if constexpr (IsFloat<T>::value) {
            y[i] = from_f<T>((float)v);
        } else {
            y[i] = from_i<T>((i64)v);
        }
    }
}

__device__ __forceinline__ void philox4x32_10(u32 c[4], u32 k0, u32 k1) {
    for (int round = 0; round < 10; ++round) {
        const u32 hi0 = __umulhi(0xD2511F53u, c[0]), lo0 = 0xD2511F53u * c[0];
        const u32 hi1 = __umulhi(0xCD9E8D57u, c[2]), lo1 = 0xCD9E8D57u * c[2];
        const u32 n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
        if (round < 9) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
    }
}

// One thread per block of four elements (math/philox.rs). Uniform: a = low,
// b = high; normal: a = mean, b = std.
template <class T> __device__ void random_k(T* y, u64 n, u64 seed, int normal, float a, float b) {
    GRID_STRIDE(blk, (n + 3) / 4) {
        u32 c[4] = {(u32)blk, (u32)(blk >> 32), 0u, 0u};
        philox4x32_10(c, (u32)seed, (u32)(seed >> 32));
        float out[4];
        if (!normal) {
            for (int l = 0; l < 4; ++l) out[l] = fmaf(b - a, (float)(c[l] >> 8) * (1.0f / 16777216.0f), a);
        } else {
            for (int p = 0; p < 4; p += 2) {
                const double u1 = ((double)(c[p] >> 8) + 1.0) * (1.0 / 16777216.0);
                const double u2 = (double)(c[p + 1] >> 8) * (1.0 / 16777216.0);
                const double r = sqrt(-2.0 * log(u1));
                const double th = 2.0 * 3.14159265358979323846 * u2;
                out[p] = fmaf(b, (float)(r * cos(th)), a);
                out[p + 1] = fmaf(b, (float)(r * sin(th)), a);
            }
        }
        for (int l = 0; l < 4; ++l) {
            const u64 i = blk * 4 + l;
            if (i < n) y[i] = from_f<T>(out[l]);
        }
    }
}

// ---------------------------------------------------------------------------
// Instantiations with C names.

#define IMAGE_FLOAT_OPS(N, T)                                                                                   \
    extern "C" __global__ void im2col_##N(ConvGeom g, const T* x, T* cols, i64 group, u64 total) {             \
        im2col_k<T>(g, x, cols, group, total);                                                                  \
    }                                                                                                           \
    extern "C" __global__ void epilogue_##N(T* y, const T* b, const T* r, u64 n, i64 ch, i64 sp, int nhwc, int act) { \
        epilogue_k<T>(y, b, r, n, ch, sp, nhwc, act);                                                           \
    }                                                                                                           \
    extern "C" __global__ void col2im_##N(ConvGeom g, const T* cols, T* out, i64 group, u64 total) {           \
        col2im_k<T>(g, cols, out, group, total);                                                                \
    }                                                                                                           \
    extern "C" __global__ void pool_##N(PoolGeom g, const T* x, T* y, u64 total) { pool_k<T>(g, x, y, total); } \
    extern "C" __global__ void group_norm_##N(GnGeom g, const T* x, const T* w, const T* b, T* y) {            \
        group_norm_k<T>(g, x, w, b, y);                                                                         \
    }                                                                                                           \
    extern "C" __global__ void bilinear_##N(ResizeGeom g, const T* x, T* y, u64 total) {                      \
        bilinear_k<T>(g, x, y, total);                                                                          \
    }                                                                                                           \
    extern "C" __global__ void random_##N(T* y, u64 n, u64 seed, int normal, float a, float b) {               \
        random_k<T>(y, n, seed, normal, a, b);                                                                  \
    }
FOR_FLOAT(IMAGE_FLOAT_OPS)

#define MATH_ANY_OPS(N, T)                                                                                      \
    extern "C" __global__ void math_##N(const T* x, T* y, u64 n, int op) { math_k<T>(x, y, n, op); }           \
    extern "C" __global__ void clamp_##N(const T* x, T* y, u64 n, float lo, float hi, i64 ilo, i64 ihi) {      \
        clamp_k<T>(x, y, n, lo, hi, ilo, ihi);                                                                  \
    }                                                                                                           \
    extern "C" __global__ void pair_##N##_u32(Layout L, const T* a, const T* b, T* o, u64 n, int op) {         \
        pair_k<T, u32>(L, a, b, o, n, op);                                                                      \
    }                                                                                                           \
    extern "C" __global__ void pair_##N##_u64(Layout L, const T* a, const T* b, T* o, u64 n, int op) {         \
        pair_k<T, u64>(L, a, b, o, n, op);                                                                      \
    }                                                                                                           \
    extern "C" __global__ void compare_##N##_u32(Layout L, const T* a, const T* b, u8* o, u64 n, int op) {     \
        compare_k<T, u32>(L, a, b, o, n, op);                                                                   \
    }                                                                                                           \
    extern "C" __global__ void compare_##N##_u64(Layout L, const T* a, const T* b, u8* o, u64 n, int op) {     \
        compare_k<T, u64>(L, a, b, o, n, op);                                                                   \
    }                                                                                                           \
    extern "C" __global__ void cumsum_##N(const T* x, T* y, i64 outer, i64 len, i64 inner) {                   \
        cumsum_k<T>(x, y, outer, len, inner);                                                                   \
    }                                                                                                           \
    extern "C" __global__ void range_##N(T* y, u64 n, double start, double step, double end, int lin) {        \
        range_k<T>(y, n, start, step, end, lin);                                                                \
    }
FOR_ALL(MATH_ANY_OPS)

#define SELECT_W(CN, C, B, W)                                                                                   \
    extern "C" __global__ void select_##CN##_w##B##_u32(Layout L, const C* c, const W* a, const W* b, W* o, u64 n, u64 base) { \
        select_k<C, W, u32>(L, c, a, b, o, n, base);                                                            \
    }                                                                                                           \
    extern "C" __global__ void select_##CN##_w##B##_u64(Layout L, const C* c, const W* a, const W* b, W* o, u64 n, u64 base) { \
        select_k<C, W, u64>(L, c, a, b, o, n, base);                                                            \
    }
#define SELECT_COND(CN, C) SELECT_W(CN, C, 8, u8) SELECT_W(CN, C, 16, u16) SELECT_W(CN, C, 32, u32) SELECT_W(CN, C, 64, u64)
FOR_ALL(SELECT_COND)

#define IMAGE_WIDTH_OPS(B, W)                                                                                   \
    extern "C" __global__ void pad_w##B(PadGeom g, const W* x, W* y, u64 total, W fill) {                      \
        pad_k<W>(g, x, y, total, fill);                                                                         \
    }                                                                                                           \
    extern "C" __global__ void nearest_w##B(ResizeGeom g, const W* x, W* y, u64 total) {                      \
        nearest_k<W>(g, x, y, total);                                                                           \
    }
BY_WIDTH(IMAGE_WIDTH_OPS)
