// dsm/nn/functional/attention.hpp: scaled dot-product attention, plain and memory-efficient, and
// rotary position embeddings.
//
//   using namespace dsm::nn::functional;
//   Var<float> o = flash_attention(q, k, v, {.causal = true});   // q [B, H, Tq, D], k/v [B, Hkv, Tk, D]
//   Var<float> r = attention(q, k, v, {.causal = true});         // the same, materializing scores
//   Var<float> qr = rotary(q, /*position_offset*/ 0);             // RoPE, rotate-half convention
//
// Both attentions take grouped-query inputs (Hkv dividing H: query head h reads key/value head
// h / (H / Hkv)), a causal mask aligned to the END of the keys (query i of Tq sees keys j <=
// i + Tk - Tq, which is torch's is_causal when Tq == Tk and what decoding with a KV cache needs),
// and a key-padding mask [B, Tk] (true = padding, never attended). A query that sees no key gets
// zeros.
//
// `attention` is the reference: scores [B, H, Tq, Tk] -> masks -> softmax -> optional dropout ->
// weights x v, from differentiable ops. `flash_attention` is the FlashAttention algorithm on the
// CPU: queries in blocks of 64, each block against all the keys it sees in products of up to 256
// keys, an online softmax across those (running max and sum per query row), only the output and
// each row's log-sum-exp kept for backward, which recomputes the block scores.
// Memory is O(T * D) instead of O(T^2); each (batch, kv-head) runs on one thread, so dK and dV of
// a key-value head shared by several query heads are summed in a fixed order (deterministic).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../../autograd/autograd.hpp"
#include "../../backend/reused_operand.hpp"
#include "activation.hpp"

namespace dsm::nn::functional {

struct AttentionOptions {
  bool causal = false;            ///< query i sees keys j <= i + Tk - Tq
  Tensor<bool> key_padding_mask{};  ///< [B, Tk], true where a key is padding; undefined: none
  double dropout_p = 0.0;         ///< dropout on the attention weights (plain attention only)
  bool training = true;           ///< dropout applies only when training
  Generator* generator = nullptr; ///< dropout's generator; the default generator when null
  double scale = 0.0;             ///< score scale; 0 means 1 / sqrt(head_dim)
};

namespace detail {

struct AttentionShape {
  std::int64_t batch, heads, kv_heads, tq, tk, d, dv;
  std::int64_t group() const { return heads / kv_heads; }
};

template <class T, class B>
AttentionShape check_attention(const char* op, const Var<T, B>& q, const Var<T, B>& k, const Var<T, B>& v, const AttentionOptions& o) {
  if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4)
    fail<shape_error>(op, "q, k, v must be [batch, heads, time, head_dim], got ", q.shape(), ", ", k.shape(), ", ", v.shape());
  const AttentionShape s{q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3), v.size(3)};
  if (k.size(0) != s.batch || v.size(0) != s.batch || v.size(1) != s.kv_heads || v.size(2) != s.tk || k.size(3) != s.d)
    fail<shape_error>(op, "q ", q.shape(), ", k ", k.shape(), " and v ", v.shape(), " do not fit together");
  if (s.kv_heads == 0 || s.heads % s.kv_heads != 0)
    fail<shape_error>(op, "the ", s.kv_heads, " key/value heads must divide the ", s.heads, " query heads");
  if (o.key_padding_mask.defined() && o.key_padding_mask.shape() != Shape{s.batch, s.tk})
    fail<shape_error>(op, "key_padding_mask ", o.key_padding_mask.shape(), " must be [", s.batch, ", ", s.tk, "]");
  if (!(o.dropout_p >= 0 && o.dropout_p < 1)) fail<config_error>(op, "dropout_p must be in [0, 1), got ", o.dropout_p);
  return s;
}

inline double attention_scale(const AttentionOptions& o, std::int64_t d) { return o.scale > 0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(d)); }

/// [B, 1 or B..., Tq, Tk]-broadcastable "masked" tensor: causal and padding together.
inline Tensor<bool> attention_mask(const AttentionShape& s, const AttentionOptions& o) {
  Tensor<bool> m = Tensor<bool>::zeros({o.key_padding_mask.defined() ? s.batch : 1, 1, s.tq, s.tk});
  const Tensor<bool> pad = o.key_padding_mask.defined() ? o.key_padding_mask.contiguous() : Tensor<bool>();
  bool* p = m.data();
  for (std::int64_t b = 0; b < m.size(0); ++b)
    for (std::int64_t i = 0; i < s.tq; ++i)
      for (std::int64_t j = 0; j < s.tk; ++j)
        p[(b * s.tq + i) * s.tk + j] = (o.causal && j > i + s.tk - s.tq) || (pad.defined() && pad.data()[b * s.tk + j]);
  return m;
}

/// Repeats each of the kv heads of x [B, Hkv, T, D] `group` times: [B, Hkv * group, T, D].
template <class T, class B>
Var<T, B> repeat_kv(const Var<T, B>& x, std::int64_t group) {
  if (group == 1) return x;
  return x.unsqueeze(2).expand({x.size(0), x.size(1), group, x.size(2), x.size(3)}).reshape({x.size(0), x.size(1) * group, x.size(2), x.size(3)});
}

}  // namespace detail

/// softmax(q k^T * scale + mask) v, materializing the [B, H, Tq, Tk] scores (the reference).
template <FloatingScalar T, class B>
Var<T, B> attention(const Var<T, B>& q, const Var<T, B>& k, const Var<T, B>& v, const AttentionOptions& o = {}) {
  const auto s = detail::check_attention("attention", q, k, v, o);
  const Var<T, B> kr = detail::repeat_kv(k, s.group()), vr = detail::repeat_kv(v, s.group());
  Var<T, B> scores = matmul(q, kr.transpose(-2, -1));
  scores = Var<T, B>(scores * static_cast<T>(detail::attention_scale(o, s.d)));
  Var<T, B> weights;
  if (o.causal || o.key_padding_mask.defined()) {
    const Tensor<bool> mask = detail::attention_mask(s, o);
    weights = softmax(masked_fill(scores, mask, -std::numeric_limits<double>::infinity()), -1);
    // A row with every key masked: zeros, not the NaN of softmax over nothing.
    Tensor<bool> dead({mask.size(0), 1, s.tq, 1});
    bool any_dead = false;
    for (std::int64_t r = 0; r < dead.numel(); ++r) {
      const bool* row = mask.data() + r * s.tk;
      dead.data()[r] = std::all_of(row, row + s.tk, [](bool m) { return m; });
      any_dead = any_dead || dead.data()[r];
    }
    if (any_dead) weights = masked_fill(weights, dead, 0.0);
  } else {
    weights = softmax(scores, -1);
  }
  if (o.dropout_p > 0 && o.training) weights = dropout(weights, o.dropout_p, true, o.generator ? *o.generator : default_generator());
  return matmul(weights, vr);
}

namespace detail {

constexpr std::int64_t flash_block = 64;       // query rows a block
constexpr std::int64_t flash_key_chunk = 256;  // most keys one product takes (the online softmax spans chunks)

/// Scratch values on a 64-byte boundary, for blocks that GEMM products write and read: at
/// std::vector's 16-byte alignment every row of a C tile straddles cache lines.
template <class T>
class AlignedScratch {
 public:
  explicit AlignedScratch(std::size_t n) : data_(static_cast<T*>(std::aligned_alloc(64, (std::max<std::size_t>(n, 1) * sizeof(T) + 63) / 64 * 64))) {
    if (!data_) throw std::bad_alloc();
  }
  T* data() const { return data_.get(); }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T, Free> data_;
};

/// How many keys, from the first, query row i can see: all of them, or under the causal mask
/// (aligned to the end of the keys) those up to i + Tk - Tq.
inline std::int64_t visible_keys(const AttentionShape& sh, bool causal, std::int64_t i) {
  return causal ? std::clamp<std::int64_t>(i + 1 + sh.tk - sh.tq, 0, sh.tk) : sh.tk;
}

/// The rows of a [B, H, T, D] operand whose D elements are contiguous: row (b, h, t) starts at
/// head(b, h) + t * st. Heads split from a projection's [B, T, H * D] output are such a view
/// (st = H * D), read where they lie instead of copied to [B, H, T, D] order.
template <class P>
struct HeadRows {
  P* data;
  std::int64_t sb, sh, st;
  P* head(std::int64_t b, std::int64_t h) const { return data + b * sb + h * sh; }
};
template <class T, class B>
HeadRows<T> head_rows(const Tensor<T, B>& x) {
  return {x.data(), x.stride(0), x.stride(1), x.stride(2)};
}
/// x itself when its last dimension has unit stride (any other layout the kernel can index), else a copy.
template <class T, class B>
Tensor<T, B> unit_inner(const Tensor<T, B>& x) {
  return x.stride(3) == 1 || x.size(3) == 1 ? x : x.contiguous();
}
/// Whether x [B, H, T, D] lies time-major, as [B, T, H, D] contiguous: split projections do.
template <class T, class B>
bool time_major(const Tensor<T, B>& x) {
  return !x.is_contiguous() && x.transpose(1, 2).is_contiguous();
}
/// A new [B, H, T, D] tensor (zeroed when `zero`), laid out time-major when `time_major`: outputs
/// and gradients take the layout of the operand they belong to, so split heads merge back into
/// [B, T, H * D] without a copy.
template <class T, class B>
Tensor<T, B> new_heads(std::int64_t batch, std::int64_t heads, std::int64_t time, std::int64_t d, bool time_major, bool zero) {
  Tensor<T, B> t = time_major ? Tensor<T, B>({batch, time, heads, d}) : Tensor<T, B>({batch, heads, time, d});
  if (zero) t.fill_(T(0));
  return time_major ? t.transpose(1, 2) : t;
}

/// Applies the causal and padding masks of one [rows, cols] score block (as -inf).
template <class T>
void mask_block(T* s, std::int64_t rows, std::int64_t cols, std::int64_t i0, std::int64_t j0, const AttentionShape& sh, bool causal, const bool* pad) {
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  // Query row i0 + r sees keys up to i0 + r + tk - tq: a causal row is a run of visible columns
  // then a run of masked ones. Most blocks lie below the diagonal and have nothing to mask.
  if (causal)
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t first_masked = std::clamp<std::int64_t>(i0 + r + sh.tk - sh.tq + 1 - j0, 0, cols);
      std::fill(s + r * cols + first_masked, s + (r + 1) * cols, ninf);
    }
  if (pad)
    for (std::int64_t c = 0; c < cols; ++c)
      if (pad[j0 + c])
        for (std::int64_t r = 0; r < rows; ++r) s[r * cols + c] = ninf;
}

}  // namespace detail

/// The same result as attention() (without dropout), in O(T * D) memory; see the header comment.
template <FloatingScalar T, class B>
Var<T, B> flash_attention(const Var<T, B>& q, const Var<T, B>& k, const Var<T, B>& v, const AttentionOptions& o = {}) {
  const auto sh = detail::check_attention("flash_attention", q, k, v, o);
  if (o.dropout_p > 0 && o.training) fail<config_error>("flash_attention", "attention dropout needs the plain attention(); got dropout_p ", o.dropout_p);
  const T scale = static_cast<T>(detail::attention_scale(o, sh.d));
  const Tensor<T, B> qv = detail::unit_inner(q.value()), kv = detail::unit_inner(k.value()), vv = detail::unit_inner(v.value());
  const Tensor<bool> pad = o.key_padding_mask.defined() ? o.key_padding_mask.contiguous() : Tensor<bool>();
  Tensor<T, B> out = detail::new_heads<T, B>(sh.batch, sh.heads, sh.tq, sh.dv, detail::time_major(qv), false);  // every row is written
  const auto Q = detail::head_rows(qv), K = detail::head_rows(kv), V = detail::head_rows(vv), O = detail::head_rows(out);
  Tensor<T, B> lse({sh.batch, sh.heads, sh.tq});  // log-sum-exp of each query row's scores
  constexpr std::int64_t bs = detail::flash_block, chunk = detail::flash_key_chunk;
  const bool causal = o.causal;

  // With several query blocks, each key chunk (as K^T) and value chunk is packed for the GEMM
  // kernel once per (batch, kv head) instead of once per query block; a single query block
  // (decoding) multiplies them where they lie.
  const bool reuse_kv = sh.tq > bs;
  cpu::parallel_for(sh.batch * sh.kv_heads, 1, [&](std::int64_t begin, std::int64_t end) {
    const detail::AlignedScratch<T> s(static_cast<std::size_t>(bs * std::min(chunk, sh.tk))), acc(static_cast<std::size_t>(bs * sh.dv));
    std::vector<T> m(bs), l(bs);
    std::vector<dsm::detail::ReusedOperand<T, B>> kt_chunks, v_chunks;
    for (std::int64_t bk = begin; bk < end; ++bk) {
      const std::int64_t b = bk / sh.kv_heads, kh = bk % sh.kv_heads;
      const T* kp = K.head(b, kh);
      const T* vp = V.head(b, kh);
      const bool* padp = pad.defined() ? pad.data() + b * sh.tk : nullptr;
      kt_chunks.clear();
      v_chunks.clear();
      for (std::int64_t j0 = 0; j0 < sh.tk; j0 += chunk) {
        const std::int64_t cols = std::min(chunk, sh.tk - j0);
        kt_chunks.emplace_back(true, sh.d, cols, kp + j0 * K.st, K.st, reuse_kv);
        v_chunks.emplace_back(false, cols, sh.dv, vp + j0 * V.st, V.st, reuse_kv);
      }
      for (std::int64_t h = kh * sh.group(); h < (kh + 1) * sh.group(); ++h) {
        const T* qp = Q.head(b, h);
        T* op = O.head(b, h);
        T* lp = lse.data() + (b * sh.heads + h) * sh.tq;
        for (std::int64_t i0 = 0; i0 < sh.tq; i0 += bs) {
          const std::int64_t rows = std::min(bs, sh.tq - i0);
          const std::int64_t visible = detail::visible_keys(sh, causal, i0 + rows - 1);  // keys [0, visible) for some row of the block
          std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
          std::fill(l.begin(), l.end(), T(0));
          if (visible == 0) std::fill(acc.data(), acc.data() + bs * sh.dv, T(0));
          // All of a block's visible keys in products of up to `chunk` columns (one for T <= 256):
          // long products amortize each call's C traffic and each operand's packing, and a
          // single chunk needs no rescaling of what came before.
          for (std::int64_t j0 = 0; j0 < visible; j0 += chunk) {
            const std::int64_t cols = std::min(chunk, visible - j0);
            const bool first = j0 == 0;
            kt_chunks[static_cast<std::size_t>(j0 / chunk)].multiply_corner(false, rows, sh.d, cols, scale, qp + i0 * Q.st, Q.st, T(0), s.data(), cols);  // Q K^T
            detail::mask_block(s.data(), rows, cols, i0, j0, sh, causal, padp);
            for (std::int64_t r = 0; r < rows; ++r) {
              T* sr = s.data() + r * cols;
              T mx = m[static_cast<std::size_t>(r)];
              DSM_SIMD_REDUCE(max, mx) for (std::int64_t c = 0; c < cols; ++c) mx = mx < sr[c] ? sr[c] : mx;
              if (mx == -std::numeric_limits<T>::infinity()) {  // nothing visible yet in this row
                std::fill(sr, sr + cols, T(0));
                continue;
              }
              T sum = 0;
              DSM_SIMD_REDUCE(+, sum) for (std::int64_t c = 0; c < cols; ++c) {
                sr[c] = math::exp_nonpositive(sr[c] - mx);  // vector exp (float)
                sum += sr[c];
              }
              if (!first) {  // rescale what the earlier chunks left (the first chunk's product overwrites acc)
                const T alpha = math::exp_nonpositive(m[static_cast<std::size_t>(r)] - mx);
                l[static_cast<std::size_t>(r)] *= alpha;
                T* ar = acc.data() + r * sh.dv;
                DSM_SIMD for (std::int64_t c = 0; c < sh.dv; ++c) ar[c] *= alpha;
              }
              l[static_cast<std::size_t>(r)] += sum;
              m[static_cast<std::size_t>(r)] = mx;
            }
            v_chunks[static_cast<std::size_t>(j0 / chunk)].multiply_corner(false, rows, cols, sh.dv, T(1), s.data(), cols, first ? T(0) : T(1), acc.data(),
                                                                           sh.dv);  // acc (+)= P V
          }
          for (std::int64_t r = 0; r < rows; ++r) {
            const T lr = l[static_cast<std::size_t>(r)];
            const T inv = lr > 0 ? T(1) / lr : T(0);
            T* orow = op + (i0 + r) * O.st;
            const T* ar = acc.data() + r * sh.dv;
            DSM_SIMD for (std::int64_t c = 0; c < sh.dv; ++c) orow[c] = ar[c] * inv;
            // +inf for an empty row makes exp(s - lse) = 0 in backward
            lp[i0 + r] = lr > 0 ? m[static_cast<std::size_t>(r)] + std::log(lr) : std::numeric_limits<T>::infinity();
          }
        }
      }
    }
  });

  return autograd::make_result(
      "flash_attention", out, {autograd::edge_of(q), autograd::edge_of(k), autograd::edge_of(v)},
      [qv, kv, vv, out, lse, pad, sh, scale, causal](const Tensor<T, B>& g0, const std::vector<autograd::Edge>& in) {
        const Tensor<T, B> dout = detail::unit_inner(g0);
        // Each gradient laid out like its input, so that a time-major q, k or v (split heads) gets
        // a time-major gradient, which reshapes back to [B, T, H * D] without a copy. Every
        // element is written by a product's first term (beta = 0; see below) unless there are
        // no queries at all.
        Tensor<T, B> dq = detail::new_heads<T, B>(sh.batch, sh.heads, sh.tq, sh.d, detail::time_major(qv), false);
        Tensor<T, B> dk = detail::new_heads<T, B>(sh.batch, sh.kv_heads, sh.tk, sh.d, detail::time_major(kv), sh.tq == 0);
        Tensor<T, B> dvv = detail::new_heads<T, B>(sh.batch, sh.kv_heads, sh.tk, sh.dv, detail::time_major(vv), sh.tq == 0);
        const auto Q = detail::head_rows(qv), K = detail::head_rows(kv), V = detail::head_rows(vv), O = detail::head_rows(out), G = detail::head_rows(dout);
        const auto dQ = detail::head_rows(dq), dK = detail::head_rows(dk), dV = detail::head_rows(dvv);
        constexpr std::int64_t bs = detail::flash_block, chunk = detail::flash_key_chunk;
        // The key operands (K^T, K, V^T of a chunk) are packed once per (batch, kv head) when
        // several query blocks multiply them, a query block's Q and dO once when several chunks do;
        // otherwise each product reads them where they lie.
        const bool reuse_kv = sh.tq > bs;
        cpu::parallel_for(sh.batch * sh.kv_heads, 1, [&](std::int64_t begin, std::int64_t end) {
          const auto block_size = static_cast<std::size_t>(bs * std::min(chunk, sh.tk));
          const detail::AlignedScratch<T> p(block_size), dp(block_size);
          std::vector<T> delta(static_cast<std::size_t>(sh.tq));
          std::vector<dsm::detail::ReusedOperand<T, B>> kt_chunks, k_chunks, vt_chunks;
          for (std::int64_t bk = begin; bk < end; ++bk) {
            const std::int64_t b = bk / sh.kv_heads, kh = bk % sh.kv_heads;
            const T* kp = K.head(b, kh);
            const T* vp = V.head(b, kh);
            T* dkp = dK.head(b, kh);
            T* dvp = dV.head(b, kh);
            const bool* padp = pad.defined() ? pad.data() + b * sh.tk : nullptr;
            kt_chunks.clear();
            k_chunks.clear();
            vt_chunks.clear();
            for (std::int64_t j0 = 0; j0 < sh.tk; j0 += chunk) {
              const std::int64_t cols = std::min(chunk, sh.tk - j0);
              kt_chunks.emplace_back(true, sh.d, cols, kp + j0 * K.st, K.st, reuse_kv);     // S = Q K^T
              k_chunks.emplace_back(false, cols, sh.d, kp + j0 * K.st, K.st, reuse_kv);     // dQ += dS K
              vt_chunks.emplace_back(true, sh.dv, cols, vp + j0 * V.st, V.st, reuse_kv);  // dP = dO V^T
            }
            // dK and dV are sums over every query row of the kv head's query heads. The first
            // block visited, the last query block of the first head, sees every key (the causal
            // mask is aligned to the end of the keys), so its products set them (beta = 0).
            bool first_visit = true;
            for (std::int64_t h = kh * sh.group(); h < (kh + 1) * sh.group(); ++h) {
              const T *qp = Q.head(b, h), *op = O.head(b, h), *gp = G.head(b, h);
              const T* lp = lse.data() + (b * sh.heads + h) * sh.tq;
              T* dqp = dQ.head(b, h);
              for (std::int64_t i = 0; i < sh.tq; ++i) {  // delta_i = <dO_i, O_i>
                T acc = 0;
                const T *gr = gp + i * G.st, *orow = op + i * O.st;  // row pointers: indexed through the strides, gcc gathered
                DSM_SIMD_REDUCE(+, acc) for (std::int64_t c = 0; c < sh.dv; ++c) acc += gr[c] * orow[c];
                delta[static_cast<std::size_t>(i)] = acc;
              }
              for (std::int64_t i0 = (sh.tq + bs - 1) / bs * bs - bs; i0 >= 0; i0 -= bs) {  // the last block first
                const std::int64_t rows = std::min(bs, sh.tq - i0);
                const std::int64_t visible = detail::visible_keys(sh, causal, i0 + rows - 1);
                if (visible == 0) {  // no row of the block sees a key: no gradient reaches its queries
                  for (std::int64_t r = 0; r < rows; ++r) std::fill(dqp + (i0 + r) * dQ.st, dqp + (i0 + r) * dQ.st + sh.d, T(0));
                  continue;
                }
                const bool several = visible > chunk;
                const dsm::detail::ReusedOperand<T, B> q_block(false, rows, sh.d, qp + i0 * Q.st, Q.st, several);     // dK += dS^T Q
                const dsm::detail::ReusedOperand<T, B> do_block(false, rows, sh.dv, gp + i0 * G.st, G.st, several);  // dV += P^T dO
                const T beta_kv = first_visit ? T(0) : T(1);
                for (std::int64_t j0 = 0; j0 < visible; j0 += chunk) {
                  const std::int64_t cols = std::min(chunk, visible - j0);
                  const auto jc = static_cast<std::size_t>(j0 / chunk);
                  kt_chunks[jc].multiply_corner(false, rows, sh.d, cols, scale, qp + i0 * Q.st, Q.st, T(0), p.data(), cols);
                  detail::mask_block(p.data(), rows, cols, i0, j0, sh, causal, padp);
                  for (std::int64_t r = 0; r < rows; ++r) {
                    T* pr = p.data() + r * cols;
                    const T lse_r = lp[i0 + r];
                    DSM_SIMD for (std::int64_t c = 0; c < cols; ++c) pr[c] = math::exp_nonpositive(pr[c] - lse_r);
                  }
                  do_block.multiply(true, cols, T(1), p.data(), cols, beta_kv, dvp + j0 * dV.st, dV.st);                               // dV (+)= P^T dO
                  vt_chunks[jc].multiply_corner(false, rows, sh.dv, cols, T(1), gp + i0 * G.st, G.st, T(0), dp.data(), cols);  // dP = dO V^T
                  for (std::int64_t r = 0; r < rows; ++r) {
                    T* dr = dp.data() + r * cols;
                    const T* pr = p.data() + r * cols;
                    const T delta_r = delta[static_cast<std::size_t>(i0 + r)];
                    DSM_SIMD for (std::int64_t c = 0; c < cols; ++c) dr[c] = pr[c] * (dr[c] - delta_r);  // dS (scale applied below)
                  }
                  k_chunks[jc].multiply_corner(false, rows, cols, sh.d, scale, dp.data(), cols, j0 == 0 ? T(0) : T(1), dqp + i0 * dQ.st, dQ.st);  // dQ (+)= dS K
                  q_block.multiply(true, cols, scale, dp.data(), cols, beta_kv, dkp + j0 * dK.st, dK.st);  // dK (+)= dS^T Q
                }
                first_visit = false;
              }
            }
          }
        });
        autograd::accumulate_input(in[0], std::move(dq));
        autograd::accumulate_input(in[1], std::move(dk));
        autograd::accumulate_input(in[2], std::move(dvv));
      });
}

namespace detail {

/// Rotates the pairs (x_i, x_{i + D/2}) of x [..., T, D] by angle (offset + t) * theta^(-2i/D),
/// or by its negative (the inverse, for the gradient).
/// A time-major [B, H, T, D] x (split heads) is rotated where it lies and the result is time-major
/// too; any other layout is read as a contiguous copy.
template <class T>
Tensor<T> rotate_pairs(const Tensor<T>& x, std::int64_t offset, double theta, bool inverse) {
  const bool heads_inner = x.rank() == 4 && time_major(x);
  const Tensor<T> src = heads_inner ? x.transpose(1, 2) : x.contiguous();  // contiguous either way
  // Rows of src are rows of D values; position of row r: r % T, or (r / H) % T for [B, T, H, D].
  const std::int64_t d = x.size(-1), t = x.size(-2), half = d / 2, rows = src.numel() / d, row_group = heads_inner ? x.size(1) : 1;
  // The cos / sin table of (positions, frequencies), kept for the next call with the same
  // positions and sizes (every layer's q and k, forward and backward, in a training step): built
  // each time with a pow and a sincos per entry, serially, it was 0.5-1% of a W7 step.
  struct Table {
    std::int64_t t = -1, d = -1, offset = -1;
    double theta = 0;
    std::vector<T> cos, sin;
  };
  thread_local Table table;
  if (table.t != t || table.d != d || table.offset != offset || table.theta != theta) {
    table = Table{t, d, offset, theta, std::vector<T>(static_cast<std::size_t>(t * half)), std::vector<T>(static_cast<std::size_t>(t * half))};
    for (std::int64_t i = 0; i < half; ++i) {
      const double frequency = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(d));
      for (std::int64_t p = 0; p < t; ++p) {
        const double angle = static_cast<double>(offset + p) * frequency;
        table.cos[static_cast<std::size_t>(p * half + i)] = static_cast<T>(std::cos(angle));
        table.sin[static_cast<std::size_t>(p * half + i)] = static_cast<T>(std::sin(angle));
      }
    }
  }
  const T sign = inverse ? T(-1) : T(1);  // the inverse rotation: the angles negated
  const std::vector<T>& cosv = table.cos;
  const std::vector<T>& sinv = table.sin;
  Tensor<T> out(src.shape());
  cpu::parallel_for(rows, 256, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t r = b; r < e; ++r) {
      const T* xr = src.data() + r * d;
      T* yr = out.data() + r * d;
      const std::int64_t position = r / row_group % t;
      const T *c = cosv.data() + position * half, *s = sinv.data() + position * half;
      DSM_SIMD for (std::int64_t i = 0; i < half; ++i) {
        const T si = sign * s[i];
        yr[i] = xr[i] * c[i] - xr[i + half] * si;
        yr[i + half] = xr[i + half] * c[i] + xr[i] * si;
      }
    }
  });
  return heads_inner ? out.transpose(1, 2) : out;
}

}  // namespace detail

/// Rotary position embedding (RoFormer; the rotate-half layout of LLaMA and DeepSeek in
/// HuggingFace) of x [..., T, D] (D even) for positions offset .. offset + T - 1.
template <FloatingScalar T>
Var<T> rotary(const Var<T>& x, std::int64_t position_offset = 0, double theta = 10000.0) {
  if (x.rank() < 2 || x.size(-1) % 2 != 0) fail<shape_error>("rotary", "input must be [..., time, even head_dim], got ", x.shape());
  if (position_offset < 0) fail<index_error>("rotary", "position offset must be >= 0, got ", position_offset);
  return autograd::make_result("rotary", detail::rotate_pairs(x.value(), position_offset, theta, false), {autograd::edge_of(x)},
                               [position_offset, theta](const Tensor<T>& g, const std::vector<autograd::Edge>& in) {
                                 autograd::accumulate_input(in[0], detail::rotate_pairs(g, position_offset, theta, true));
                               });
}

}  // namespace dsm::nn::functional
