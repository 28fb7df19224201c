// Kernels of the decoder ops (issue 18). NVRTC compiles this file after
// prelude.cu (its types and helpers: to_f, from_f, block_sum, the
// f16s/bf16s storage types) as a program of its own, on the first use of a
// decoder op (see kernels.rs).
//
// Every kernel stays inside its buffers whatever the data says: positions,
// lengths and offsets read from device memory are range-checked here, and
// an out-of-range value skips the element (the host checks them outside
// graph replays and reports an error instead).

#define MAX_FREQS 128
#define NO_WINDOW 0xffffffffu

template <class P> __device__ __forceinline__ i64 load_index(const P* p, i64 i) { return to_i(p[i]); }

// ---------------------------------------------------------------------------
// Linear layers at a few rows: a bandwidth-bound GEMV. One warp per output
// feature; lanes stride the weight row 16 bytes at a time (the row is read
// once for all ROWS input rows), four loads in flight per lane.

#define LINEAR_JOBS 8

struct LinearJobs {
    u64 w[LINEAR_JOBS];
    u64 bias[LINEAR_JOBS];
    u64 y[LINEAR_JOBS];
    i64 out[LINEAR_JOBS];
    i64 first_block[LINEAR_JOBS + 1];
    u64 residual;  // [rows, out] of job 0, or 0
    int count;
    int pad;
};

#define GEMV_WARPS 4

template <class T> struct Vec16 { static constexpr int N = 16 / sizeof(T); };

template <class T, int N> __device__ __forceinline__ void unpack16(const uint4& raw, float* out) {
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < N; ++i) out[i] = to_f(e[i]);
}

// ROWS is the most input rows the instantiation handles; `rows` (<= ROWS)
// the number there are.
template <class T, int ROWS, bool VEC>
__device__ void gemv_k(const T* __restrict__ x, i64 rows, i64 in, LinearJobs jobs) {
    int job = 0;
    while (job + 1 < jobs.count && (i64)blockIdx.x >= jobs.first_block[job + 1]) ++job;
    const i64 out = jobs.out[job];
    const i64 o = ((i64)blockIdx.x - jobs.first_block[job]) * GEMV_WARPS + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (o >= out) return;
    const T* __restrict__ w = reinterpret_cast<const T*>(jobs.w[job]) + o * in;
    float acc[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r) acc[r] = 0.0f;
    i64 done = 0;
    if (VEC) {
        constexpr int N = Vec16<T>::N;
        const i64 chunks = in / N;
        const uint4* wv = reinterpret_cast<const uint4*>(w);
        i64 c = lane;
        // Four independent 16-byte loads per lane per step keep enough
        // bytes in flight to cover HBM latency.
        for (; c + 96 < chunks; c += 128) {
            uint4 raw[4];
#pragma unroll
            for (int u = 0; u < 4; ++u) raw[u] = __ldg(wv + c + 32 * u);
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                float wf[N];
                unpack16<T, N>(raw[u], wf);
#pragma unroll
                for (int r = 0; r < ROWS; ++r) {
                    if (r >= rows) break;
                    const uint4 xr = __ldg(reinterpret_cast<const uint4*>(x + r * in) + c + 32 * u);
                    float xf[N];
                    unpack16<T, N>(xr, xf);
#pragma unroll
                    for (int i = 0; i < N; ++i) acc[r] = fmaf(wf[i], xf[i], acc[r]);
                }
            }
        }
        for (; c < chunks; c += 32) {
            float wf[N];
            unpack16<T, N>(__ldg(wv + c), wf);
#pragma unroll
            for (int r = 0; r < ROWS; ++r) {
                if (r >= rows) break;
                float xf[N];
                unpack16<T, N>(__ldg(reinterpret_cast<const uint4*>(x + r * in) + c), xf);
#pragma unroll
                for (int i = 0; i < N; ++i) acc[r] = fmaf(wf[i], xf[i], acc[r]);
            }
        }
        done = chunks * N;
    }
    for (i64 i = done + lane; i < in; i += 32) {
        const float wf = to_f(w[i]);
#pragma unroll
        for (int r = 0; r < ROWS; ++r)
            if (r < rows) acc[r] = fmaf(wf, to_f(x[r * in + i]), acc[r]);
    }
#pragma unroll
    for (int r = 0; r < ROWS; ++r) acc[r] = warp_sum(acc[r]);
    if (lane == 0) {
        const T* bias = reinterpret_cast<const T*>(jobs.bias[job]);
        const T* res = reinterpret_cast<const T*>(jobs.residual);
        T* y = reinterpret_cast<T*>(jobs.y[job]);
        const float b = bias ? to_f(bias[o]) : 0.0f;
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            if (r >= rows) break;
            float v = acc[r] + b;
            if (res) v += to_f(res[r * out + o]);
            y[r * out + o] = from_f<T>(v);
        }
    }
}

// y[rows, out] = bias (broadcast) + residual, before a cuBLAS product with
// beta = 1 adds x @ w^T. Either may be null.
template <class T> __device__ void linear_init_k(T* y, const T* bias, const T* res, i64 rows, i64 out) {
    GRID_STRIDE(k, (u64)(rows * out)) {
        const i64 o = (i64)k % out;
        float v = bias ? to_f(bias[o]) : 0.0f;
        if (res) v += to_f(res[k]);
        y[k] = from_f<T>(v);
    }
}

template <class T> __device__ void silu_mul_k(const T* g, const T* u, T* y, u64 n) {
    GRID_STRIDE(i, n) {
        const float x = to_f(g[i]);
        y[i] = from_f<T>(x / (1.0f + expf(-x)) * to_f(u[i]));
    }
}

// ---------------------------------------------------------------------------
// Rotary embeddings. Angles in f32 as position * inv_freq, pairs rotated in
// f32, stored once in the tensor's dtype.

struct RopeArgs {
    float inv_freq[MAX_FREQS];
    int rotary_dim;
    int interleaved;
};

// The partner of dimension d within its pair and the pair's frequency
// index; false for a dimension that does not rotate.
__device__ __forceinline__ bool rope_pair(const RopeArgs& a, int d, int& partner, int& freq, bool& first) {
    if (d >= a.rotary_dim) return false;
    if (a.interleaved) {
        freq = d >> 1;
        first = (d & 1) == 0;
        partner = first ? d + 1 : d - 1;
    } else {
        const int half = a.rotary_dim >> 1;
        first = d < half;
        freq = first ? d : d - half;
        partner = first ? d + half : d - half;
    }
    return true;
}

__device__ __forceinline__ float rope_value(const RopeArgs& a, int d, float self, float other, i64 position) {
    int partner, freq;
    bool first;
    if (!rope_pair(a, d, partner, freq, first)) return self;
    float s, c;
    sincosf((float)position * a.inv_freq[freq], &s, &c);
    return first ? self * c - other * s : self * c + other * s;
}

// x [batch, seq, heads, dim]; positions [seq] (per_batch = 0) or [batch, seq].
template <class T, class P>
__device__ void rope_k(const T* x, T* y, const P* pos, int per_batch, i64 batch, i64 seq, i64 heads, i64 dim, RopeArgs a) {
    GRID_STRIDE(k, (u64)(batch * seq * heads * dim)) {
        const i64 d = (i64)k % dim;
        const i64 token = (i64)k / (heads * dim);
        const i64 s = token % seq;
        const i64 p = load_index(pos, per_batch ? token : s);
        int partner, freq;
        bool first;
        const float other = rope_pair(a, (int)d, partner, freq, first) ? to_f(x[(i64)k - d + partner]) : 0.0f;
        y[k] = from_f<T>(rope_value(a, (int)d, to_f(x[k]), other, p));
    }
}

// New keys (rotated when rotate != 0) and values [batch, seq, heads, dim]
// written into the caches [batch, capacity, heads, dim] at their
// positions; a position outside the cache is skipped.
template <class T, class P>
__device__ void cache_append_k(const T* k, const T* v, T* kc, T* vc, const P* pos, int per_batch, i64 batch, i64 seq,
                               i64 heads, i64 dim, i64 capacity, int rotate, RopeArgs a) {
    GRID_STRIDE(e, (u64)(batch * seq * heads * dim)) {
        const i64 d = (i64)e % dim;
        const i64 token = (i64)e / (heads * dim);
        const i64 b = token / seq, s = token % seq;
        const i64 p = load_index(pos, per_batch ? token : s);
        if (p < 0 || p >= capacity) continue;
        const i64 within = (i64)e - token * heads * dim;
        const i64 slot = (b * capacity + p) * heads * dim + within;
        float kv = to_f(k[e]);
        if (rotate) {
            int partner, freq;
            bool first;
            const float other = rope_pair(a, (int)d, partner, freq, first) ? to_f(k[(i64)e - d + partner]) : 0.0f;
            kv = rope_value(a, (int)d, kv, other, p);
        }
        kc[slot] = from_f<T>(kv);
        vc[slot] = v[e];
    }
}

// ---------------------------------------------------------------------------
// Attention. Both kernels share the visibility rules of the CPU reference
// (cpu/attention.rs): each query has a position and an end (one past its
// last visible key); keys before position - window + 1 and masked keys are
// skipped; a query that sees nothing gets zeros.

struct AttnArgs {
    u64 q, k, v, out;
    u64 valid;      // lengths [batch] or [1] (plain), or 0
    u64 positions;  // query positions [seq] or [batch, seq] (cached), or 0
    u64 mask;       // key mask [batch, kv_len], or 0
    i64 batch, q_len, q_heads, kv_len, kv_heads, head_dim;
    int valid_dtype, valid_per_batch;  // dtype codes: 0 i32, 1 i64, 2 u8
    int pos_dtype, pos_per_batch;
    int mask_dtype;                   // 0 f32 1 f16 2 bf16 3 i32 4 i64 5 u8
    int causal;
    float scale;
    u32 window;
};

__device__ __forceinline__ i64 load_code(u64 ptr, int code, i64 i) {
    switch (code) {
        case 0: return (i64)reinterpret_cast<const int*>(ptr)[i];
        case 1: return reinterpret_cast<const i64*>(ptr)[i];
        default: return (i64)reinterpret_cast<const u8*>(ptr)[i];
    }
}

__device__ __forceinline__ bool mask_allows(const AttnArgs& a, i64 b, i64 j) {
    if (!a.mask) return true;
    const i64 i = b * a.kv_len + j;
    switch (a.mask_dtype) {
        case 0: return reinterpret_cast<const float*>(a.mask)[i] != 0.0f;
        case 1: return to_f(reinterpret_cast<const f16s*>(a.mask)[i]) != 0.0f;
        case 2: return to_f(reinterpret_cast<const bf16s*>(a.mask)[i]) != 0.0f;
        case 3: return reinterpret_cast<const int*>(a.mask)[i] != 0;
        case 4: return reinterpret_cast<const i64*>(a.mask)[i] != 0;
        default: return reinterpret_cast<const u8*>(a.mask)[i] != 0;
    }
}

// Position and key range [first, end) of query i of batch entry b.
__device__ __forceinline__ void visible(const AttnArgs& a, i64 b, i64 i, i64& position, i64& first, i64& end) {
    if (a.positions) {
        const i64 base = a.pos_per_batch ? b * a.q_len : 0;
        position = load_code(a.positions, a.pos_dtype, base + i);
        const i64 last = load_code(a.positions, a.pos_dtype, base + a.q_len - 1);
        end = (a.causal ? position : last) + 1;
        end = end < 0 ? 0 : (end > a.kv_len ? a.kv_len : end);
    } else {
        i64 valid = a.kv_len;
        if (a.valid) valid = load_code(a.valid, a.valid_dtype, a.valid_per_batch ? b : 0);
        valid = valid < 0 ? 0 : (valid > a.kv_len ? a.kv_len : valid);
        position = valid - a.q_len + i;
        end = a.causal ? position + 1 : valid;
        end = end < 0 ? 0 : (end > valid ? valid : end);
    }
    first = a.window == NO_WINDOW ? 0 : position - (i64)a.window + 1;
    if (first < 0) first = 0;
}

// Many queries: flash-attention's tiling on CUDA cores. A block holds
// 128 / TPQ (query, head) pairs of one kv head (the heads of a GQA group
// side by side, so a key tile serves all of them; a group wider than a
// block is split over several); TPQ threads split a query's D dimensions
// 32 each; key/value tiles of KT rows sit in shared memory as f32; the
// softmax is online (running max and sum). Grid: batch * kv_heads *
// head_chunks * tiles blocks (attention_tiles_grid on the host).
template <class T, int D>
__device__ void attention_tiles_k(AttnArgs a) {
    constexpr int TPQ = D / 32;
    constexpr int PAIRS = 128 / TPQ;
    constexpr int KT = 4096 / D;
    __shared__ float ks[KT][D];
    __shared__ float vs[KT][D];
    const i64 group = a.q_heads / a.kv_heads;
    const i64 heads_per_block = group < PAIRS ? group : PAIRS;
    const i64 head_chunks = (group + heads_per_block - 1) / heads_per_block;
    const i64 queries_per_block = PAIRS / heads_per_block;
    const i64 tiles = (a.q_len + queries_per_block - 1) / queries_per_block;
    const i64 tile = blockIdx.x % tiles;
    const i64 chunk = (blockIdx.x / tiles) % head_chunks;
    const i64 kvh = (blockIdx.x / (tiles * head_chunks)) % a.kv_heads;
    const i64 b = blockIdx.x / (tiles * head_chunks * a.kv_heads);
    const int pair = threadIdx.x / TPQ, part = threadIdx.x % TPQ;
    const i64 qi = tile * queries_per_block + pair / heads_per_block;
    const i64 hh = chunk * heads_per_block + pair % heads_per_block;
    const i64 h = kvh * group + hh;
    const bool active = pair / heads_per_block < queries_per_block && qi < a.q_len && hh < group;
    const T* q = reinterpret_cast<const T*>(a.q);
    const T* K = reinterpret_cast<const T*>(a.k);
    const T* V = reinterpret_cast<const T*>(a.v);
    const i64 hd = a.head_dim;
    // Inactive threads run the loops too (with nothing visible), so the
    // shuffles always see every lane of their group.
    float qv[32], acc[32];
    i64 position = 0, first = 0, end = 0;
#pragma unroll
    for (int d = 0; d < 32; ++d) {
        qv[d] = 0.0f;
        acc[d] = 0.0f;
    }
    if (active) {
        visible(a, b, qi, position, first, end);
        const T* qr = q + ((b * a.q_len + qi) * a.q_heads + h) * hd;
#pragma unroll
        for (int d = 0; d < 32; ++d) {
            const int dd = part * 32 + d;
            if (dd < hd) qv[d] = to_f(qr[dd]) * a.scale;
        }
    }
    // The block's key range: the union of its queries' ranges.
    i64 lo = 0, hi = 0;
    {
        i64 p0, f0, e0, p1, f1, e1;
        const i64 q0 = tile * queries_per_block;
        i64 q1 = q0 + queries_per_block - 1;
        if (q1 >= a.q_len) q1 = a.q_len - 1;
        visible(a, b, q0, p0, f0, e0);
        visible(a, b, q1, p1, f1, e1);
        // Ranges grow with the query index (positions increase), so the
        // first and last query bound them.
        lo = f0 < f1 ? f0 : f1;
        hi = e0 > e1 ? e0 : e1;
    }
    float m = -INF_F, l = 0.0f;
    for (i64 t0 = lo; t0 < hi; t0 += KT) {
        __syncthreads();
        for (int e = threadIdx.x; e < KT * D; e += blockDim.x) {
            const int r = e / D, d = e % D;
            const i64 j = t0 + r;
            float kf = 0.0f, vf = 0.0f;
            if (j < hi && d < hd) {
                const i64 at = ((b * a.kv_len + j) * a.kv_heads + kvh) * hd + d;
                kf = to_f(K[at]);
                vf = to_f(V[at]);
            }
            ks[r][d] = kf;
            vs[r][d] = vf;
        }
        __syncthreads();
        for (int r = 0; r < KT; ++r) {
            const i64 j = t0 + r;
            float s = 0.0f;
#pragma unroll
            for (int d = 0; d < 32; ++d) s = fmaf(qv[d], ks[r][part * 32 + d], s);
#pragma unroll
            for (int o = TPQ / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o, TPQ);
            if (j < first || j >= end || !mask_allows(a, b, j)) continue;
            if (s > m) {
                const float c = __expf(m - s);
                l *= c;
#pragma unroll
                for (int d = 0; d < 32; ++d) acc[d] *= c;
                m = s;
            }
            const float p = __expf(s - m);
            l += p;
#pragma unroll
            for (int d = 0; d < 32; ++d) acc[d] = fmaf(p, vs[r][part * 32 + d], acc[d]);
        }
    }
    if (active) {
        T* o = reinterpret_cast<T*>(a.out) + ((b * a.q_len + qi) * a.q_heads + h) * hd;
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
        for (int d = 0; d < 32; ++d) {
            const int dd = part * 32 + d;
            if (dd < hd) o[dd] = from_f<T>(acc[d] * inv);
        }
    }
}

// Few queries (decode): flash-decoding. Grid (batch * kv_heads, splits);
// a block takes CHUNK keys of one kv head for all its R = group * q_len
// (query, head) rows: 4 warps stride the chunk, lanes split D (DL = D/32
// dimensions each), per-warp online softmax; the block's partial (max,
// sum, unnormalised output) goes to scratch, and the last block of a kv
// head to finish (a counter, reset for the next launch) merges the splits.
//
// With `append` (attention-cached), the new keys (rotated) and values of
// the step are staged in shared memory first: the block whose chunk holds
// a new slot writes it to the cache, and every block reads new slots from
// shared memory, so no block reads a slot another is still writing.
#define DECODE_CHUNK 64

struct DecodeExtra {
    u64 new_k, new_v;  // [batch, q_len, kv_heads, dim] (append) or 0
    u64 scratch;       // float [batch*kv_heads][splits][R][2 + D]
    u64 counters;      // u32 [batch*kv_heads], zero before the first launch
    int append, rotate;
    int splits, pad;
    RopeArgs rope;
};

template <class T, int D, int RM>
__device__ void attention_decode_k(AttnArgs a, DecodeExtra x) {
    constexpr int DL = D / 32;
    const i64 group = a.q_heads / a.kv_heads;
    const int R = (int)(group * a.q_len);
    const i64 bh = blockIdx.x;
    const i64 b = bh / a.kv_heads, kvh = bh % a.kv_heads;
    const int split = blockIdx.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const i64 hd = a.head_dim;
    const T* q = reinterpret_cast<const T*>(a.q);
    const T* K = reinterpret_cast<const T*>(a.k);
    const T* V = reinterpret_cast<const T*>(a.v);

    // New tokens number q_len <= R <= RM.
    __shared__ float qs[RM][D];
    __shared__ float nk[RM][D];
    __shared__ float nv[RM][D];
    __shared__ i64 qpos[RM], qfirst[RM], qend[RM];
    __shared__ float wm[4][RM], wl[4][RM];
    __shared__ float sacc[RM][D];
    __shared__ int last_block;

    // Queries (rotated in attention-cached), scaled.
    for (int e = threadIdx.x; e < RM * D; e += blockDim.x) {
        const int r = e / D, d = e % D;
        float val = 0.0f;
        if (r < R && d < hd) {
            const i64 qi = r / group, h = kvh * group + r % group;
            const T* qr = q + ((b * a.q_len + qi) * a.q_heads + h) * hd;
            val = to_f(qr[d]);
            if (x.rotate) {
                i64 p, f, en;
                visible(a, b, qi, p, f, en);
                int partner, freq;
                bool first;
                const float other = rope_pair(x.rope, d, partner, freq, first) ? to_f(qr[partner]) : 0.0f;
                val = rope_value(x.rope, d, val, other, p);
            }
            val *= a.scale;
        }
        qs[r][d] = val;
    }
    if (threadIdx.x < RM) {
        const int r = threadIdx.x;
        i64 p = 0, f = 0, en = 0;
        if (r < R) visible(a, b, r / group, p, f, en);
        qpos[r] = p;
        qfirst[r] = f;
        qend[r] = r < R ? en : 0;
    }
    const i64 chunk0 = (i64)split * DECODE_CHUNK;
    // New keys and values of this step (attention-cached).
    const int nnew = x.append ? (int)a.q_len : 0;
    i64 p0 = 0;
    if (x.append) {
        const i64 base = a.pos_per_batch ? b * a.q_len : 0;
        p0 = load_code(a.positions, a.pos_dtype, base);
        const T* NK = reinterpret_cast<const T*>(x.new_k);
        const T* NV = reinterpret_cast<const T*>(x.new_v);
        for (int e = threadIdx.x; e < nnew * D; e += blockDim.x) {
            const int s = e / D, d = e % D;
            float kf = 0.0f, vf = 0.0f;
            if (d < hd) {
                const i64 at = ((b * a.q_len + s) * a.kv_heads + kvh) * hd;
                kf = to_f(NK[at + d]);
                vf = to_f(NV[at + d]);
                if (x.rotate) {
                    int partner, freq;
                    bool first;
                    const float other = rope_pair(x.rope, d, partner, freq, first) ? to_f(NK[at + partner]) : 0.0f;
                    kf = rope_value(x.rope, d, kf, other, load_code(a.positions, a.pos_dtype, base + s));
                }
            }
            nk[s][d] = kf;
            nv[s][d] = vf;
        }
    }
    __syncthreads();
    if (x.append) {
        // The block whose chunk holds a new slot writes it to the cache.
        T* KC = reinterpret_cast<T*>(a.k);
        T* VC = reinterpret_cast<T*>(a.v);
        const i64 base = a.pos_per_batch ? b * a.q_len : 0;
        for (int e = threadIdx.x; e < nnew * D; e += blockDim.x) {
            const int s = e / D, d = e % D;
            const i64 p = load_code(a.positions, a.pos_dtype, base + s);
            if (d >= hd || p < chunk0 || p >= chunk0 + DECODE_CHUNK || p < 0 || p >= a.kv_len) continue;
            const i64 at = ((b * a.kv_len + p) * a.kv_heads + kvh) * hd + d;
            KC[at] = from_f<T>(nk[s][d]);
            VC[at] = from_f<T>(nv[s][d]);
        }
    }

    float m[RM], l[RM], acc[RM][DL];
#pragma unroll
    for (int r = 0; r < RM; ++r) {
        m[r] = -INF_F;
        l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < DL; ++i) acc[r][i] = 0.0f;
    }
    i64 chunk_end = chunk0 + DECODE_CHUNK;
    if (chunk_end > a.kv_len) chunk_end = a.kv_len;
    for (i64 j = chunk0 + warp; j < chunk_end; j += 4) {
        bool any = false;
#pragma unroll
        for (int r = 0; r < RM; ++r) any |= r < R && j >= qfirst[r] && j < qend[r];
        if (!any || !mask_allows(a, b, j)) continue;
        float kf[DL], vf[DL];
        const i64 s = j - p0;
        if (x.append && s >= 0 && s < nnew) {
#pragma unroll
            for (int i = 0; i < DL; ++i) {
                kf[i] = nk[s][lane * DL + i];
                vf[i] = nv[s][lane * DL + i];
            }
        } else {
            const i64 at = ((b * a.kv_len + j) * a.kv_heads + kvh) * hd;
#pragma unroll
            for (int i = 0; i < DL; ++i) {
                const int d = lane * DL + i;
                kf[i] = d < hd ? to_f(K[at + d]) : 0.0f;
                vf[i] = d < hd ? to_f(V[at + d]) : 0.0f;
            }
        }
#pragma unroll
        for (int r = 0; r < RM; ++r) {
            if (r >= R) break;
            float sc = 0.0f;
#pragma unroll
            for (int i = 0; i < DL; ++i) sc = fmaf(qs[r][lane * DL + i], kf[i], sc);
            sc = warp_sum(sc);
            if (j < qfirst[r] || j >= qend[r]) continue;
            if (sc > m[r]) {
                const float c = __expf(m[r] - sc);
                l[r] *= c;
#pragma unroll
                for (int i = 0; i < DL; ++i) acc[r][i] *= c;
                m[r] = sc;
            }
            const float p = __expf(sc - m[r]);
            l[r] += p;
#pragma unroll
            for (int i = 0; i < DL; ++i) acc[r][i] = fmaf(p, vf[i], acc[r][i]);
        }
    }
    // Merge the 4 warps: the block's max per row, then each warp in turn
    // adds its rescaled sums (a fixed order, so results repeat exactly).
#pragma unroll
    for (int r = 0; r < RM; ++r) {
        if (lane == 0) {
            wm[warp][r] = m[r];
            wl[warp][r] = l[r];
        }
    }
    for (int e = threadIdx.x; e < RM * D; e += blockDim.x) sacc[e / D][e % D] = 0.0f;
    __syncthreads();
    for (int w = 0; w < 4; ++w) {
        if (warp == w) {
#pragma unroll
            for (int r = 0; r < RM; ++r) {
                const float M = fmaxf(fmaxf(wm[0][r], wm[1][r]), fmaxf(wm[2][r], wm[3][r]));
                const float c = m[r] == -INF_F ? 0.0f : __expf(m[r] - M);
#pragma unroll
                for (int i = 0; i < DL; ++i) sacc[r][lane * DL + i] += acc[r][i] * c;
            }
        }
        __syncthreads();
    }
    float* scratch = reinterpret_cast<float*>(x.scratch);
    const i64 slot_floats = 2 + D;
    for (int e = threadIdx.x; e < R * D; e += blockDim.x) {
        const int r = e / D, d = e % D;
        const float M = fmaxf(fmaxf(wm[0][r], wm[1][r]), fmaxf(wm[2][r], wm[3][r]));
        float L = 0.0f;
        if (M != -INF_F) {
            for (int w = 0; w < 4; ++w) L += wm[w][r] == -INF_F ? 0.0f : wl[w][r] * __expf(wm[w][r] - M);
        }
        float* out = scratch + ((bh * x.splits + split) * RM + r) * slot_floats;
        if (d == 0) {
            out[0] = M;
            out[1] = L;
        }
        out[2 + d] = sacc[r][d];
    }
    // The last block of this kv head to finish merges every split.
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        u32* counters = reinterpret_cast<u32*>(x.counters);
        const u32 done = atomicAdd(counters + bh, 1u);
        last_block = done == (u32)x.splits - 1;
        if (last_block) counters[bh] = 0;
    }
    __syncthreads();
    if (!last_block) return;
    __threadfence();
    T* o = reinterpret_cast<T*>(a.out);
    for (int e = threadIdx.x; e < R * D; e += blockDim.x) {
        const int r = e / D, d = e % D;
        if (d >= hd) continue;
        float M = -INF_F;
        for (int s = 0; s < x.splits; ++s) {
            const volatile float* part = scratch + ((bh * x.splits + s) * RM + r) * slot_floats;
            M = fmaxf(M, part[0]);
        }
        float L = 0.0f, A = 0.0f;
        if (M != -INF_F) {
            for (int s = 0; s < x.splits; ++s) {
                const volatile float* part = scratch + ((bh * x.splits + s) * RM + r) * slot_floats;
                if (part[0] == -INF_F) continue;
                const float c = __expf(part[0] - M);
                L += part[1] * c;
                A += part[2 + d] * c;
            }
        }
        const i64 qi = r / group, h = kvh * group + r % group;
        o[((b * a.q_len + qi) * a.q_heads + h) * hd + d] = from_f<T>(L > 0.0f ? A / L : 0.0f);
    }
}

// ---------------------------------------------------------------------------
// In-place write: src [outer, len, inner] into target [outer, dim, inner]
// at start + offset (offset read from device memory, or 0); nothing is
// written when it does not fit.
template <class W>
__device__ void write_k(W* target, const W* src, i64 outer, i64 len, i64 inner, i64 dim, i64 start, u64 offset, int offset_code) {
    const i64 at = start + (offset ? load_code(offset, offset_code, 0) : 0);
    if (at < 0 || at + len > dim) return;
    GRID_STRIDE(k, (u64)(outer * len * inner)) {
        const i64 o = (i64)k / (len * inner), rest = (i64)k % (len * inner);
        target[(o * dim + at) * inner + rest] = src[k];
    }
}

// ---------------------------------------------------------------------------
// Sampling (one block of 1024 threads per row), step for step as
// sampling.rs specifies: integer weights, radix selection of the top-k and
// top-p boundaries over the 64-bit rank key (logit key << 32 | ~id), and an
// index-order prefix sum for the draw.

struct SampleArgs {
    u64 seed;
    float temperature;
    float top_p;
    u32 top_k;
    int counter_code;
};

__device__ __forceinline__ u32 order_key(float x) {
    if (x != x) return 0u;
    const u32 b = __float_as_uint(x);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ u64 rank_key(float x, i64 i) { return ((u64)order_key(x) << 32) | (u64)(0xffffffffu - (u32)i); }

__device__ void philox4x32_10(u32 c[4], u32 k0, u32 k1) {
    for (int round = 0; round < 10; ++round) {
        const u32 lo0 = 0xD2511F53u * c[0], hi0 = __umulhi(0xD2511F53u, c[0]);
        const u32 lo1 = 0xCD9E8D57u * c[2], hi1 = __umulhi(0xCD9E8D57u, c[2]);
        const u32 n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

__device__ u64 block_max_u64(u64 v) {
    __shared__ u64 sh[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const u64 other = __shfl_xor_sync(0xffffffffu, v, o);
        v = other > v ? other : v;
    }
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? sh[lane] : 0ull;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const u64 other = __shfl_xor_sync(0xffffffffu, v, o);
            v = other > v ? other : v;
        }
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

// The boundary rank key of a selection over the elements with rank key >=
// `floor_key`: with by_weight = false, the key of the `want`-th element in
// rank order; with by_weight = true, of the first element at which the
// running weight (in rank order) reaches `want`. Radix over the 64-bit key
// in 8-bit digits, from the top.
template <class T>
__device__ u64 select_boundary(const T* x, const u64* w, i64 vocab, u64 floor_key, u64 want, bool by_weight) {
    __shared__ u64 weights[256];
    __shared__ u32 counts[256];
    __shared__ u64 pick_prefix;
    __shared__ u64 pick_want;
    __shared__ int pick_done;
    u64 prefix = 0;
    for (int shift = 56; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += blockDim.x) {
            weights[i] = 0;
            counts[i] = 0;
        }
        __syncthreads();
        const u64 high_mask = shift == 56 ? 0ull : (~0ull << (shift + 8));
        for (i64 i = threadIdx.x; i < vocab; i += blockDim.x) {
            const u64 key = rank_key(to_f(x[i]), i);
            if (key < floor_key || (key & high_mask) != prefix) continue;
            const u32 digit = (u32)(key >> shift) & 255u;
            atomicAdd(&counts[digit], 1u);
            if (by_weight) atomicAdd((unsigned long long*)&weights[digit], (unsigned long long)w[i]);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            u64 run = 0;
            int digit = 255;
            for (; digit > 0; --digit) {
                const u64 here = by_weight ? weights[digit] : (u64)counts[digit];
                if (run + here >= want) break;
                run += here;
            }
            pick_prefix = prefix | ((u64)digit << shift);
            pick_want = want - run;
            // Done when the bin holds just the boundary element, or (by
            // count) exactly the elements still wanted: every key from the
            // bin's lower bound up is then kept, none below.
            pick_done = counts[digit] == 1 || (!by_weight && (u64)counts[digit] == pick_want);
        }
        __syncthreads();
        prefix = pick_prefix;
        want = pick_want;
        if (pick_done) return prefix;
        __syncthreads();
    }
    return prefix;
}

template <class T>
__device__ u64 kept_weight(const T* x, const u64* w, i64 vocab, u64 floor_key) {
    u64 s = 0;
    for (i64 i = threadIdx.x; i < vocab; i += blockDim.x)
        if (rank_key(to_f(x[i]), i) >= floor_key) s += w[i];
    return block_sum(s);
}

template <class T, class C>
__device__ void sample_k(const T* logits, i64 rows, i64 vocab, SampleArgs a, const C* counter, i64* out, u64* scratch) {
    __shared__ i64 chosen;
    __shared__ u64 chunk_sums[1024];
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* x = logits + row * vocab;
        u64* w = scratch + row * vocab;
        u64 best = 0;
        for (i64 i = threadIdx.x; i < vocab; i += blockDim.x) {
            const u64 key = rank_key(to_f(x[i]), i);
            best = key > best ? key : best;
        }
        best = block_max_u64(best);
        const i64 best_id = (i64)(0xffffffffu - (u32)(best & 0xffffffffu));
        const float max = to_f(x[best_id]);
        if (a.temperature == 0.0f || !isfinite(max)) {
            if (threadIdx.x == 0) out[row] = best_id;
            __syncthreads();
            continue;
        }
        u64 total = 0;
        for (i64 i = threadIdx.x; i < vocab; i += blockDim.x) {
            const float v = to_f(x[i]);
            u64 wi = 0;
            if (v == v) wi = (u64)(exp(((double)v - (double)max) / (double)a.temperature) * 1099511627776.0);
            w[i] = wi;
            total += wi;
        }
        total = block_sum(total);
        __syncthreads();
        u64 floor_key = 0;
        if (a.top_k > 0 && (i64)a.top_k < vocab) {
            floor_key = select_boundary(x, w, vocab, 0, (u64)a.top_k, false);
            total = kept_weight(x, w, vocab, floor_key);
        }
        if (a.top_p < 1.0f) {
            u64 target = (u64)ceil((double)a.top_p * (double)total);
            if (target < 1) target = 1;
            floor_key = select_boundary(x, w, vocab, floor_key, target, true);
            total = kept_weight(x, w, vocab, floor_key);
        }
        // The draw: the lowest id whose running kept weight exceeds target.
        const u64 cval = (u64)load_code((u64)counter, a.counter_code, 0);
        u32 c[4] = {(u32)cval, (u32)(cval >> 32), (u32)row, (u32)((u64)row >> 32)};
        philox4x32_10(c, (u32)a.seed, (u32)(a.seed >> 32));
        const u64 r = ((u64)c[1] << 32) | c[0];
        const u64 target = __umul64hi(r, total);
        const i64 per = (vocab + blockDim.x - 1) / blockDim.x;
        const i64 lo = threadIdx.x * per;
        const i64 hi = lo + per < vocab ? lo + per : vocab;
        u64 mine = 0;
        for (i64 i = lo; i < hi; ++i)
            if (rank_key(to_f(x[i]), i) >= floor_key) mine += w[i];
        chunk_sums[threadIdx.x] = mine;
        if (threadIdx.x == 0) chosen = best_id;
        __syncthreads();
        if (threadIdx.x == 0) {
            // Exclusive prefix of the chunk sums (1024 adds: negligible).
            u64 run = 0;
            for (int t = 0; t < (int)blockDim.x; ++t) {
                const u64 s = chunk_sums[t];
                chunk_sums[t] = run;
                run += s;
            }
        }
        __syncthreads();
        u64 run = chunk_sums[threadIdx.x];
        if (run <= target && run + mine > target) {
            for (i64 i = lo; i < hi; ++i) {
                if (rank_key(to_f(x[i]), i) < floor_key) continue;
                run += w[i];
                if (run > target) {
                    chosen = i;
                    break;
                }
            }
        }
        __syncthreads();
        if (threadIdx.x == 0) out[row] = chosen;
        __syncthreads();
    }
}

// ---------------------------------------------------------------------------
// Instantiations: <kernel>_<dtype>[_<variant>]

#define DECODER_FLOAT_OPS(N, T)                                                                                  \
    GEMV(N, T, 1) GEMV(N, T, 4)                                                                                  \
    extern "C" __global__ void linear_init_##N(T* y, const T* b, const T* r, i64 rows, i64 out) {                \
        linear_init_k<T>(y, b, r, rows, out);                                                                   \
    }                                                                                                            \
    extern "C" __global__ void silu_mul_##N(const T* g, const T* u, T* y, u64 n) { silu_mul_k<T>(g, u, y, n); }  \
    extern "C" __global__ void attention_tiles_d32_##N(AttnArgs a) { attention_tiles_k<T, 32>(a); }              \
    extern "C" __global__ void attention_tiles_d64_##N(AttnArgs a) { attention_tiles_k<T, 64>(a); }              \
    extern "C" __global__ void attention_tiles_d128_##N(AttnArgs a) { attention_tiles_k<T, 128>(a); }            \
    extern "C" __global__ void attention_tiles_d256_##N(AttnArgs a) { attention_tiles_k<T, 256>(a); }            \
    DECODE_DIMS(N, T, 64)                                                                                        \
    DECODE_DIMS(N, T, 128)                                                                                       \
    DECODE_DIMS(N, T, 256)                                                                                       \
    ROPE_POS(N, T, i32, int)                                                                                     \
    ROPE_POS(N, T, i64, i64)                                                                                     \
    ROPE_POS(N, T, u8, u8)                                                                                       \
    SAMPLE_COUNTER(N, T, i32, int)                                                                               \
    SAMPLE_COUNTER(N, T, i64, i64)                                                                               \
    SAMPLE_COUNTER(N, T, u8, u8)

#define GEMV(N, T, R)                                                                                            \
    extern "C" __global__ void gemv##R##_##N(const T* x, i64 rows, i64 in, LinearJobs j) {                        \
        gemv_k<T, R, false>(x, rows, in, j);                                                                     \
    }                                                                                                            \
    extern "C" __global__ void gemv##R##v_##N(const T* x, i64 rows, i64 in, LinearJobs j) {                       \
        gemv_k<T, R, true>(x, rows, in, j);                                                                      \
    }

#define DECODE_RM(N, T, D, RM)                                                                                   \
    extern "C" __global__ void attention_decode_d##D##_r##RM##_##N(AttnArgs a, DecodeExtra x) {                 \
        attention_decode_k<T, D, RM>(a, x);                                                                      \
    }
// Row buckets 4 and 8 (up to the GQA groups of common models; one row
// runs in the bucket of 4); D = 256 stops at 4 (shared memory is
// 16 * D * RM bytes, registers RM * D / 32 per thread).
#define DECODE_DIMS(N, T, D) DECODE_RM(N, T, D, 4) DECODE_RM_8_##D(N, T)
#define DECODE_RM_8_64(N, T) DECODE_RM(N, T, 64, 8)
#define DECODE_RM_8_128(N, T) DECODE_RM(N, T, 128, 8)
#define DECODE_RM_8_256(N, T)

#define ROPE_POS(N, T, PN, P)                                                                                    \
    extern "C" __global__ void rope_##N##_##PN(const T* x, T* y, const P* pos, int per_batch, i64 batch, i64 seq, \
                                               i64 heads, i64 dim, RopeArgs a) {                                \
        rope_k<T, P>(x, y, pos, per_batch, batch, seq, heads, dim, a);                                          \
    }                                                                                                            \
    extern "C" __global__ void cache_append_##N##_##PN(const T* k, const T* v, T* kc, T* vc, const P* pos,       \
                                                       int per_batch, i64 batch, i64 seq, i64 heads, i64 dim,    \
                                                       i64 capacity, int rotate, RopeArgs a) {                   \
        cache_append_k<T, P>(k, v, kc, vc, pos, per_batch, batch, seq, heads, dim, capacity, rotate, a);         \
    }

#define SAMPLE_COUNTER(N, T, CN, C)                                                                              \
    extern "C" __global__ void sample_##N##_##CN(const T* x, i64 rows, i64 vocab, SampleArgs a, const C* c,     \
                                                 i64* out, u64* scratch) {                                       \
        sample_k<T, C>(x, rows, vocab, a, c, out, scratch);                                                      \
    }

// kernels.rs compiles this file once per float dtype, on first use, with
// DECODER_DTYPE(X) defined as X(<name>, <C type>) for that dtype, and once
// with DECODER_WRITES for the (dtype-free) in-place writes.
#ifdef DECODER_DTYPE
DECODER_DTYPE(DECODER_FLOAT_OPS)
#endif

#ifdef DECODER_WRITES
#define WRITE_WIDTH(B, W)                                                                                        \
    extern "C" __global__ void write_w##B(W* t, const W* s, i64 outer, i64 len, i64 inner, i64 dim, i64 start,   \
                                          u64 offset, int code) {                                                \
        write_k<W>(t, s, outer, len, inner, dim, start, offset, code);                                           \
    }
BY_WIDTH(WRITE_WIDTH)
#endif
