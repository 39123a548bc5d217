// dsm/nn/functional/lstm.hpp: one LSTM layer (one or both directions) as a single autograd node.
//
//   std::vector<functional::LSTMDirection<float>> dirs{{w_ih, w_hh, b_ih, b_hh}, {...reverse}};
//   auto r = functional::lstm_layer(x, dirs, {.batch_first = true}, lengths);   // x [B, T, I]
//   r.output  // [B, T, 2H]: the forward direction in [..., :H], the reverse one in [..., H:]
//   r.h_n     // [2, B, H], r.c_n likewise
//
// Gates follow torch.nn.LSTM (order i, f, g, o; weight_ih [4H, I], weight_hh [4H, H]):
//   (i, f, g, o) = (sigma, sigma, tanh, sigma)(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
//   c_t = f c_{t-1} + i g,   h_t = o tanh(c_t).
// Each step is ONE GEMM: [x_t, h_{t-1}] [B, I+H] times [W_ih, W_hh]^T packed once per call, so
// the input projection and the recurrent product share a kernel call whose rows stay in cache
// (projecting every step up front wrote a [B*T, D*4H] matrix that each step then read back from
// memory); the gate non-linearities, the biases and the cell update are one fused pass over its
// rows, with math::fast_sigmoid and fast_tanh (one rational function each, within 5 ulp, half
// the time of the exp-based ones: the gates were a sixth of a decoding step). Backward through
// time mirrors it: per step one fused pass and one GEMM giving both dx_t
// and dh_{t-1} (dgates_t [W_ih, W_hh]); then [dW_ih, dW_hh] as one whole-sequence GEMM against the
// saved [x_t, h_{t-1}] rows, and the biases as column sums. The two directions run
// concurrently when two threads are available. Without a graph to record (no_grad, or no input
// requiring a gradient) nothing is saved for the backward.
//
// Variable lengths: sequence b is valid at steps t < lengths[b]. Padded steps neither change the
// state nor receive gradient; their outputs are zero (as pad_packed_sequence gives them), and h_n,
// c_n are the states after the last valid step (the reverse direction starts at lengths[b] - 1),
// as with packed sequences in PyTorch.
#pragma once

#include <span>
#include <vector>

#include "../../autograd/autograd.hpp"
#include "../../backend/reused_operand.hpp"
#include "../../expr/math.hpp"

namespace dsm::nn::functional {

/// The weights of one direction, named as torch.nn.LSTM names them. The biases may be undefined.
template <class T, class B = cpu>
struct LSTMDirection {
  Var<T, B> w_ih;  // [4H, I]
  Var<T, B> w_hh;  // [4H, H]
  Var<T, B> b_ih;  // [4H]
  Var<T, B> b_hh;  // [4H]
};

struct LSTMLayerOptions {
  bool batch_first = true;  ///< x is [B, T, I] (else [T, B, I]); the output follows
};

/// The result of one layer. output [B, T, D*H] (or [T, B, D*H]); h_n and c_n [D, B, H].
template <class T, class B = cpu>
struct LSTMLayerResult {
  Var<T, B> output;
  Var<T, B> h_n;
  Var<T, B> c_n;
};

/// Checks lengths against a batch of `batch` sequences of `steps` steps; empty means all full.
inline std::vector<std::int64_t> checked_lengths(const char* op, std::span<const std::int64_t> lengths, std::int64_t batch, std::int64_t steps) {
  if (lengths.empty()) return std::vector<std::int64_t>(static_cast<std::size_t>(batch), steps);
  if (static_cast<std::int64_t>(lengths.size()) != batch) fail<shape_error>(op, lengths.size(), " lengths for a batch of ", batch);
  for (std::size_t b = 0; b < lengths.size(); ++b)
    if (lengths[b] < 0 || lengths[b] > steps) fail<index_error>(op, "length ", lengths[b], " of sequence ", b, " is outside [0, ", steps, "]");
  return {lengths.begin(), lengths.end()};
}

/// The lengths of a prefix mask [B, T] (true = a real token). Fails when a sequence has a gap.
template <class Bk>
std::vector<std::int64_t> lengths_from_mask(const char* op, const Tensor<bool, Bk>& mask) {
  if (mask.rank() != 2) fail<shape_error>(op, "mask of shape ", mask.shape(), " must be [batch, time]");
  const std::int64_t n = mask.size(0), steps = mask.size(1);
  const auto m = mask.contiguous().to_vector();
  std::vector<std::int64_t> lengths(static_cast<std::size_t>(n));
  for (std::int64_t b = 0; b < n; ++b) {
    std::int64_t len = 0;
    while (len < steps && m[static_cast<std::size_t>(b * steps + len)]) ++len;
    for (std::int64_t t = len; t < steps; ++t)
      if (m[static_cast<std::size_t>(b * steps + t)]) fail<error>(op, "mask of sequence ", b, " has a gap at step ", len, " (masks must be prefixes)");
    lengths[static_cast<std::size_t>(b)] = len;
  }
  return lengths;
}

namespace detail {

/// Where row (b, t) of a [B, T, ...] or [T, B, ...] layout lives, in rows.
struct StepLayout {
  std::int64_t batch, steps, step_stride, batch_stride;
  std::int64_t row(std::int64_t b, std::int64_t t) const { return b * batch_stride + t * step_stride; }
};

/// Gates of one valid row: activates pre + bias (pre [i f g o], 4H) into act (which may be pre)
/// and writes the new (h, c); c_prev may be c_out.
template <class T>
void lstm_cell_forward(std::int64_t h, const T* pre, const T* bias, T* act, const T* c_prev, T* h_out, T* c_out) {
  DSM_SIMD for (std::int64_t j = 0; j < h; ++j) {
    const T i = math::fast_sigmoid(pre[j] + bias[j]), f = math::fast_sigmoid(pre[h + j] + bias[h + j]);
    const T g = math::fast_tanh(pre[2 * h + j] + bias[2 * h + j]), o = math::fast_sigmoid(pre[3 * h + j] + bias[3 * h + j]);
    act[j] = i;
    act[h + j] = f;
    act[2 * h + j] = g;
    act[3 * h + j] = o;
    const T c = f * c_prev[j] + i * g;
    c_out[j] = c;
    h_out[j] = o * math::fast_tanh(c);
  }
}

/// The backward of one valid row: from the activated gates a4, c_{t-1}, the output's gradient dy
/// plus the one from step t+1, dh_next, and dc (in: from step t+1, out: to step t-1), writes the
/// pre-activation gradients d4. tanh(c_t) is recomputed: saving it from the forward measured no
/// faster (this loop waits on the saved gates' reads, not on its arithmetic).
template <class T>
void lstm_cell_backward(std::int64_t h, const T* a4, const T* c_prev, const T* dy, const T* dh_next, T* dc, T* d4) {
  DSM_SIMD for (std::int64_t j = 0; j < h; ++j) {
    const T i = a4[j], f = a4[h + j], g = a4[2 * h + j], o = a4[3 * h + j];
    const T c = f * c_prev[j] + i * g, tc = math::fast_tanh(c), dh = dy[j] + dh_next[j];
    const T dct = dc[j] + dh * o * (T(1) - tc * tc);
    d4[j] = dct * g * i * (T(1) - i);
    d4[h + j] = dct * c_prev[j] * f * (T(1) - f);
    d4[2 * h + j] = dct * i * (T(1) - g * g);
    d4[3 * h + j] = dh * tc * o * (T(1) - o);
    dc[j] = dct * f;
  }
}

/// Everything one direction's recurrence reads and writes, as raw row-major buffers. The saved
/// ones (gates, xh_prev, c_prev) are null when no backward will run.
template <class T>
struct DirectionBuffers {
  const T* w_step; // [4H, I+H]: [W_ih, W_hh] side by side (ld I+H), the weight of every per-step GEMM
  const T* bias;   // [4H]: b_ih + b_hh
  T* gates;        // column block of the [rows, D*4H] activated gates (ld D*4H)
  T* xh_prev;      // column block of [rows, D*(I+H)]: each step's GEMM input [x_t, h_{t-1}]
  T* c_prev;       // column block of [rows, D*H]: the cell state entering each step
  T* out;          // column block of the output (rows of width D*H, in x's row order)
  T* h_last;       // [B, H] rows for h_n, c_n (ld D*H)
  T* c_last;
  const T* h0;     // [B, H] or null (zeros)
  const T* c0;
  bool reverse;
  // Inference from looked-up projections (lstm_layer_lookup): each row's x_t W_ih^T + biases is
  // row table_rows[r] of table (ld ld_table), in = 0 and w_step is W_hh alone.
  const T* table = nullptr;
  const std::int64_t* table_rows = nullptr;
  std::int64_t ld_table = 0;
};

/// The forward recurrence of one direction over x [rows, in].
template <class T, class B>
void lstm_direction_forward(const StepLayout& L, std::int64_t in, std::int64_t h, std::int64_t n_dirs, const std::vector<std::int64_t>& lengths,
                            const T* x, const DirectionBuffers<T>& d) {
  const std::int64_t nb = L.batch, ldg = n_dirs * 4 * h, ldh = n_dirs * h, k = in + h, ldx = n_dirs * k;
  const bool save = d.gates != nullptr && L.steps > 0;  // no steps: the state is h0, c0 and nothing is saved
  // Each step's GEMM input is [x_t, h_{t-1}] (B rows of I+H). When the backward will run, these
  // rows are the saved ones (xh_prev, evenly spaced: batch_stride rows apart) and the cell writes
  // h_t and c_t straight into the next step's saved rows; otherwise one local block serves every
  // step, the state updated in place. xh and cs always receive the state after the last step.
  std::vector<T> xh(static_cast<std::size_t>(nb * k)), cs(static_cast<std::size_t>(nb * h)), gstep(static_cast<std::size_t>(nb * 4 * h));
  const std::int64_t first_t = d.reverse ? L.steps - 1 : 0;
  for (std::int64_t b = 0; b < nb; ++b) {
    T* h_in = save ? d.xh_prev + L.row(b, first_t) * ldx + in : xh.data() + b * k + in;
    T* c_in = save ? d.c_prev + L.row(b, first_t) * ldh : cs.data() + b * h;
    for (std::int64_t j = 0; j < h; ++j) {
      h_in[j] = d.h0 ? d.h0[b * h + j] : T(0);
      c_in[j] = d.c0 ? d.c0[b * h + j] : T(0);
    }
  }
  const dsm::detail::ReusedOperand<T, B> step_weights(true, k, 4 * h, d.w_step, k);  // [W_ih, W_hh]^T
  for (std::int64_t s = 0; s < L.steps; ++s) {
    const std::int64_t t = d.reverse ? L.steps - 1 - s : s, t_next = d.reverse ? t - 1 : t + 1;
    const bool last = s + 1 == L.steps;
    T* a_rows = save ? d.xh_prev + L.row(0, t) * ldx : xh.data();
    const std::int64_t lda = save ? L.batch_stride * ldx : k;
    if (in > 0)
      for (std::int64_t b = 0; b < nb; ++b) std::copy(x + L.row(b, t) * in, x + (L.row(b, t) + 1) * in, a_rows + b * lda);
    if (d.table)  // the step's table rows are scattered over a table larger than the caches: fetch them during the GEMM
      for (std::int64_t b = 0; b < nb; ++b) {
        const T* row = d.table + d.table_rows[L.row(b, t)] * d.ld_table;
        for (std::int64_t j = 0; j < 4 * h; j += 64 / static_cast<std::int64_t>(sizeof(T))) __builtin_prefetch(row + j);
      }
    step_weights.multiply(false, nb, T(1), a_rows, lda, T(0), gstep.data(), 4 * h);  // [B, 4H] pre-activations, biases still to add
    for (std::int64_t b = 0; b < nb; ++b) {
      const std::int64_t r = L.row(b, t);
      const T* h_in = a_rows + b * lda + in;
      const T* c_in = save ? d.c_prev + r * ldh : cs.data() + b * h;
      T* h_out = save && !last ? d.xh_prev + L.row(b, t_next) * ldx + in : xh.data() + b * k + in;
      T* c_out = save && !last ? d.c_prev + L.row(b, t_next) * ldh : cs.data() + b * h;
      T* o = d.out + r * ldh;
      if (t >= lengths[static_cast<std::size_t>(b)]) {  // padding: the state passes through
        if (h_out != h_in) std::copy(h_in, h_in + h, h_out);
        if (c_out != c_in) std::copy(c_in, c_in + h, c_out);
        std::fill(o, o + h, T(0));
        continue;
      }
      T* pre = gstep.data() + b * 4 * h;
      const T* bias = d.table ? d.table + d.table_rows[r] * d.ld_table : d.bias;
      lstm_cell_forward(h, pre, bias, save ? d.gates + r * ldg : pre, c_in, h_out, c_out);
      std::copy(h_out, h_out + h, o);
    }
  }
  for (std::int64_t b = 0; b < nb; ++b) {
    std::copy(xh.data() + b * k + in, xh.data() + b * k + in + h, d.h_last + b * ldh);
    std::copy(cs.data() + b * h, cs.data() + (b + 1) * h, d.c_last + b * ldh);
  }
}

/// Backward through time of one direction. dgates receives the pre-activation gradients (zero
/// on padding); dh0 and dc0 [B, H] the gradients of the initial state; dx [rows, I] (or null)
/// this direction's share of the input gradient, computed per step by the same GEMM as dh_{t-1};
/// dbias [4H] (or null) the sum of dgates over all rows, the gradient of either bias, added up
/// while each row is in cache (a pass over dgates afterwards took 2% of a W5 step).
template <class T, class B>
void lstm_direction_backward(const StepLayout& L, std::int64_t in, std::int64_t h, std::int64_t n_dirs, const std::vector<std::int64_t>& lengths,
                             const DirectionBuffers<T>& d, const T* dout, const T* dh_n, const T* dc_n,
                             T* dgates, T* dh0, T* dc0, T* dx, T* dbias) {
  const std::int64_t nb = L.batch, ldg = n_dirs * 4 * h, ldh = n_dirs * h;
  // [dx_t, dh_{t-1}] = dgates_t [W_ih, W_hh]; without dx only the W_hh columns.
  const std::int64_t x_cols = dx ? in : 0, n_out = x_cols + h;
  std::vector<T> dh(static_cast<std::size_t>(nb * h)), dc(static_cast<std::size_t>(nb * h));
  std::vector<T> dxh(static_cast<std::size_t>(nb * n_out));
  for (std::int64_t b = 0; b < nb; ++b)  // the gradients reaching h_n and c_n ([B, H] rows, ld D*H)
    for (std::int64_t j = 0; j < h; ++j) {
      dh[static_cast<std::size_t>(b * h + j)] = dh_n[b * ldh + j];
      dc[static_cast<std::size_t>(b * h + j)] = dc_n[b * ldh + j];
    }
  const dsm::detail::ReusedOperand<T, B> w_back(false, 4 * h, n_out, d.w_step + (in - x_cols), in + h);
  for (std::int64_t s = L.steps - 1; s >= 0; --s) {
    const std::int64_t t = d.reverse ? L.steps - 1 - s : s;
    bool any = false;
    for (std::int64_t b = 0; b < nb; ++b) {
      const std::int64_t r = L.row(b, t);
      T* dg = dgates + r * ldg;
      if (t >= lengths[static_cast<std::size_t>(b)]) {
        std::fill(dg, dg + 4 * h, T(0));
        continue;
      }
      any = true;
      const T* dy = dout + r * ldh;
      lstm_cell_backward(h, d.gates + r * ldg, d.c_prev + r * ldh, dy, dh.data() + b * h, dc.data() + b * h, dg);
      if (dbias) DSM_SIMD for (std::int64_t j = 0; j < 4 * h; ++j) dbias[j] += dg[j];
    }
    if (!any) {  // every sequence is padded here: no gradient reaches x_t
      if (dx)
        for (std::int64_t b = 0; b < nb; ++b) std::fill(dx + L.row(b, t) * in, dx + (L.row(b, t) + 1) * in, T(0));
      continue;
    }
    // The step's rows of dgates are evenly spaced (batch_stride rows apart): the GEMM reads them in place.
    w_back.multiply(false, nb, T(1), dgates + L.row(0, t) * ldg, L.batch_stride * ldg, T(0), dxh.data(), n_out);
    for (std::int64_t b = 0; b < nb; ++b) {
      const T* row = dxh.data() + b * n_out;
      if (dx) std::copy(row, row + in, dx + L.row(b, t) * in);  // zero on padded rows (their dgates are)
      // Padded rows keep their incoming dh: their state passed through.
      if (t < lengths[static_cast<std::size_t>(b)]) std::copy(row + x_cols, row + n_out, dh.data() + b * h);
    }
  }
  std::copy(dh.begin(), dh.end(), dh0);
  std::copy(dc.begin(), dc.end(), dc0);
}

/// Runs f(d) for each direction, concurrently when there are two and threads to spare.
template <class F>
void for_each_direction(std::int64_t n_dirs, F&& f) {
#if defined(_OPENMP)
  if (n_dirs == 2 && omp_get_max_threads() >= 2 && !omp_in_parallel()) {
    const GemmPrecision precision = gemm_precision();  // the worker keeps the caller's autocast mode
#pragma omp parallel for num_threads(2) schedule(static, 1)
    for (std::int64_t d = 0; d < 2; ++d) {
      const dsm::detail::GemmPrecisionScope mode(precision);
      f(d);
    }
    return;
  }
#endif
  for (std::int64_t d = 0; d < n_dirs; ++d) f(d);
}

}  // namespace detail

/// One LSTM layer over x, in one direction (dirs.size() == 1) or both (2; dirs[1] reads the
/// sequence backwards). h0 and c0 are [D, B, H] or undefined (zeros); lengths as described above
/// (empty: every sequence is full). Requires float or double and matching shapes.
template <FloatingScalar T, class B>
LSTMLayerResult<T, B> lstm_layer(const Var<T, B>& x, std::span<const LSTMDirection<T, B>> dirs, LSTMLayerOptions o = {},
                                 std::span<const std::int64_t> lengths = {}, const Var<T, B>& h0 = {}, const Var<T, B>& c0 = {}) {
  constexpr const char* op = "lstm_layer";
  const auto n_dirs = static_cast<std::int64_t>(dirs.size());
  if (n_dirs != 1 && n_dirs != 2) fail<config_error>(op, "1 or 2 directions, got ", n_dirs);
  if (x.rank() != 3) fail<shape_error>(op, "input of shape ", x.shape(), " must be ", o.batch_first ? "[batch, time, features]" : "[time, batch, features]");
  const std::int64_t nb = o.batch_first ? x.size(0) : x.size(1), steps = o.batch_first ? x.size(1) : x.size(0), in = x.size(2);
  const std::int64_t h = dirs[0].w_hh.defined() ? dirs[0].w_hh.size(-1) : 0;
  for (std::int64_t d = 0; d < n_dirs; ++d) {
    const auto& w = dirs[static_cast<std::size_t>(d)];
    if (!w.w_ih.defined() || !w.w_hh.defined() || w.w_ih.shape() != Shape{4 * h, in} || w.w_hh.shape() != Shape{4 * h, h})
      fail<shape_error>(op, "direction ", d, ": weight_ih ", w.w_ih.defined() ? w.w_ih.shape() : Shape{}, " and weight_hh ",
                        w.w_hh.defined() ? w.w_hh.shape() : Shape{}, " must be [4H, ", in, "] and [4H, H] with H = ", h);
    for (const auto* bias : {&w.b_ih, &w.b_hh})
      if (bias->defined() && bias->shape() != Shape{4 * h}) fail<shape_error>(op, "direction ", d, ": bias of shape ", bias->shape(), " must be [", 4 * h, "]");
  }
  if (h <= 0) fail<shape_error>(op, "hidden size must be positive");
  for (const auto* s : {&h0, &c0})
    if (s->defined() && s->shape() != Shape{n_dirs, nb, h}) fail<shape_error>(op, "initial state of shape ", s->shape(), " must be [", n_dirs, ", ", nb, ", ", h, "]");
  const std::vector<std::int64_t> lens = checked_lengths(op, lengths, nb, steps);

  const detail::StepLayout L{nb, steps, o.batch_first ? 1 : nb, o.batch_first ? steps : 1};
  const std::int64_t rows = nb * steps, ldg = n_dirs * 4 * h, ldh = n_dirs * h;
  // The node's value packs output, h_n and c_n as rows of width D*H: the B*T output rows in x's
  // own order, then the B rows of h_n and the B rows of c_n. The three results are views of it,
  // and the output is contiguous (a projection after it reshapes it to [B*T, D*H] without a copy).

  std::vector<autograd::Edge> edges{autograd::edge_of(x)};
  for (const auto& w : dirs) {
    edges.push_back(autograd::edge_of(w.w_ih));
    edges.push_back(autograd::edge_of(w.w_hh));
    edges.push_back(autograd::edge_of(w.b_ih));
    edges.push_back(autograd::edge_of(w.b_hh));
  }
  edges.push_back(autograd::edge_of(h0));
  edges.push_back(autograd::edge_of(c0));
  bool records = false;  // whether make_result will keep a backward: only then is anything saved
  for (const auto& e : edges) records = records || e != nullptr;
  records = records && is_grad_enabled();

  const Shape x_shape = x.shape();
  const Tensor<T, B> xv = x.value().contiguous().reshape({rows, in});
  Tensor<T, B> w_step({n_dirs * 4 * h, in + h}), bias_all = Tensor<T, B>::zeros({ldg});
  for (std::int64_t d = 0; d < n_dirs; ++d) {
    const auto& w = dirs[static_cast<std::size_t>(d)];
    // Row by row: a strided copy_ into the two column blocks took 2% of a W5 decoding step.
    const Tensor<T, B> w_ih = w.w_ih.value().contiguous(), w_hh = w.w_hh.value().contiguous();
    for (std::int64_t r = 0; r < 4 * h; ++r) {
      T* row = w_step.data() + (d * 4 * h + r) * (in + h);
      std::copy(w_ih.data() + r * in, w_ih.data() + (r + 1) * in, row);
      std::copy(w_hh.data() + r * h, w_hh.data() + (r + 1) * h, row + in);
    }
    if (w.b_ih.defined()) bias_all.narrow(0, d * 4 * h, 4 * h) += w.b_ih.value();
    if (w.b_hh.defined()) bias_all.narrow(0, d * 4 * h, 4 * h) += w.b_hh.value();
  }
  // Saved for the backward only: activated gates, each step's GEMM input [x_t, h_{t-1}] and the
  // cell state entering it.
  const std::int64_t ldxh = n_dirs * (in + h);
  Tensor<T, B> gates, xh_prev, c_prev;
  if (records) {
    gates = Tensor<T, B>({rows, ldg});
    xh_prev = Tensor<T, B>({rows, ldxh});
    c_prev = Tensor<T, B>({rows, ldh});
  }

  const Tensor<T, B> h0v = h0.defined() ? h0.value().contiguous() : Tensor<T, B>(), c0v = c0.defined() ? c0.value().contiguous() : Tensor<T, B>();
  Tensor<T, B> packed({rows + 2 * nb, ldh});
  T* const last = packed.data() + rows * ldh;  // h_n's rows, then c_n's
  auto buffers = [=](std::int64_t d) {  // by value: the backward closure keeps its own copy
    return detail::DirectionBuffers<T>{w_step.data() + d * 4 * h * (in + h), bias_all.data() + d * 4 * h,
                                       records ? gates.data() + d * 4 * h : nullptr, records ? xh_prev.data() + d * (in + h) : nullptr,
                                       records ? c_prev.data() + d * h : nullptr, packed.data() + d * h, last + d * h, last + nb * ldh + d * h,
                                       h0v.defined() ? h0v.data() + d * nb * h : nullptr, c0v.defined() ? c0v.data() + d * nb * h : nullptr, d == 1};
  };
  detail::for_each_direction(n_dirs, [&](std::int64_t d) { detail::lstm_direction_forward<T, B>(L, in, h, n_dirs, lens, xv.data(), buffers(d)); });

  Var<T, B> result = autograd::make_result(
      op, packed, std::move(edges),
      [=](const Tensor<T, B>& dpacked0, const std::vector<autograd::Edge>& in_edges) {
        const Tensor<T, B> dpacked = dpacked0.contiguous();
        Tensor<T, B> dgates({rows, ldg}), dstate({2, n_dirs, nb, h});
        const T* dlast = dpacked.data() + rows * ldh;  // the gradients of h_n's rows, then of c_n's
        bool bias_grads = false;
        for (std::int64_t d = 0; d < n_dirs; ++d) bias_grads = bias_grads || in_edges[static_cast<std::size_t>(3 + 4 * d)] || in_edges[static_cast<std::size_t>(4 + 4 * d)];
        Tensor<T, B> dbias = bias_grads ? Tensor<T, B>::zeros({n_dirs, 4 * h}) : Tensor<T, B>();
        // Each direction's share of dx, summed after (both run at once on two threads).
        std::vector<Tensor<T, B>> dx_dir;
        if (in_edges[0])
          for (std::int64_t d = 0; d < n_dirs; ++d) dx_dir.emplace_back(Shape{rows, in});
        detail::for_each_direction(n_dirs, [&](std::int64_t d) {
          detail::lstm_direction_backward<T, B>(L, in, h, n_dirs, lens, buffers(d), dpacked.data() + d * h, dlast + d * h, dlast + nb * ldh + d * h,
                                                dgates.data() + d * 4 * h, dstate.data() + d * nb * h,
                                                dstate.data() + (n_dirs + d) * nb * h, in_edges[0] ? dx_dir[static_cast<std::size_t>(d)].data() : nullptr,
                                                bias_grads ? dbias.data() + d * 4 * h : nullptr);
        });
        if (in_edges[0]) {
          Tensor<T, B> dx = dx_dir[0];
          for (std::int64_t d = 1; d < n_dirs; ++d) dx += dx_dir[static_cast<std::size_t>(d)];
          autograd::accumulate_input(in_edges[0], dx.reshape(x_shape));
        }
        for (std::int64_t d = 0; d < n_dirs; ++d) {
          const auto e = static_cast<std::size_t>(1 + 4 * d);
          const T* dg = dgates.data() + d * 4 * h;
          if (in_edges[e] || in_edges[e + 1]) {
            // [dW_ih, dW_hh]^T = [x, h_{t-1}]^T dgates over all steps: one GEMM, in this orientation
            // because its sizes (I+H rows, 4H columns) fill the 6 x 16 register tiles where 4H rows
            // and I+H columns leave a partial column panel (W5: 228 = 38 x 6; 512 = 32 x 16).
            Tensor<T, B> dwt({in + h, 4 * h});
            B::gemm(true, false, in + h, 4 * h, rows, T(1), xh_prev.data() + d * (in + h), ldxh, dg, ldg, T(0), dwt.data(), 4 * h);
            if (in_edges[e]) autograd::accumulate_input(in_edges[e], dwt.narrow(0, 0, in).transpose(0, 1).contiguous());
            if (in_edges[e + 1]) autograd::accumulate_input(in_edges[e + 1], dwt.narrow(0, in, h).transpose(0, 1).contiguous());
          }
          if (in_edges[e + 2] || in_edges[e + 3]) {  // both biases get the column sums of dgates
            Tensor<T, B> db = dbias.select(0, d).clone();
            if (in_edges[e + 2]) autograd::accumulate_input(in_edges[e + 2], db.clone());
            if (in_edges[e + 3]) autograd::accumulate_input(in_edges[e + 3], std::move(db));
          }
        }
        const auto e0 = static_cast<std::size_t>(1 + 4 * n_dirs);
        if (in_edges[e0]) autograd::accumulate_input(in_edges[e0], dstate.select(0, 0).clone());
        if (in_edges[e0 + 1]) autograd::accumulate_input(in_edges[e0 + 1], dstate.select(0, 1).clone());
      });

  auto state = [&](std::int64_t which) {  // [B, D*H] -> [D, B, H]
    return result.narrow(0, rows + which * nb, nb).reshape({nb, n_dirs, h}).transpose(0, 1);
  };
  return {result.narrow(0, 0, rows).reshape(o.batch_first ? Shape{nb, steps, ldh} : Shape{steps, nb, ldh}), state(0), state(1)};
}

/// Inference for a layer whose inputs are tokens: row v of table [V, D*4H] holds
/// x_v W_ih^T + b_ih + b_hh of each direction side by side (EmbeddingProjectionCache keeps one
/// for an embedding), ids [B, T] (or [T, B]) pick each step's row, and every step's GEMM is
/// h_{t-1} W_hh^T alone (only dirs[d].w_hh is read). The results equal lstm_layer over the
/// embedded tokens up to rounding (the input product is summed apart from the recurrent one).
/// Records no graph.
template <FloatingScalar T, class B>
LSTMLayerResult<T, B> lstm_layer_lookup(const Tensor<T, B>& table, const Tensor<std::int64_t, B>& ids, std::span<const LSTMDirection<T, B>> dirs,
                                        LSTMLayerOptions o = {}, std::span<const std::int64_t> lengths = {}, const Tensor<T, B>& h0 = {},
                                        const Tensor<T, B>& c0 = {}) {
  constexpr const char* op = "lstm_layer_lookup";
  const auto n_dirs = static_cast<std::int64_t>(dirs.size());
  if (n_dirs != 1 && n_dirs != 2) fail<config_error>(op, "1 or 2 directions, got ", n_dirs);
  if (ids.rank() != 2) fail<shape_error>(op, "ids of shape ", ids.shape(), " must be ", o.batch_first ? "[batch, time]" : "[time, batch]");
  const std::int64_t nb = o.batch_first ? ids.size(0) : ids.size(1), steps = o.batch_first ? ids.size(1) : ids.size(0);
  const std::int64_t h = dirs[0].w_hh.defined() ? dirs[0].w_hh.size(-1) : 0;
  if (h <= 0) fail<shape_error>(op, "hidden size must be positive");
  for (std::int64_t d = 0; d < n_dirs; ++d) {
    const auto& w = dirs[static_cast<std::size_t>(d)].w_hh;
    if (!w.defined() || w.shape() != Shape{4 * h, h})
      fail<shape_error>(op, "direction ", d, ": weight_hh ", w.defined() ? w.shape() : Shape{}, " must be [4H, H] with H = ", h);
  }
  const std::int64_t ldg = n_dirs * 4 * h, ldh = n_dirs * h, rows = nb * steps;
  if (table.rank() != 2 || table.size(1) != ldg) fail<shape_error>(op, "table of shape ", table.shape(), " must be [vocabulary, ", ldg, "]");
  for (const auto* s : {&h0, &c0})
    if (s->defined() && s->shape() != Shape{n_dirs, nb, h}) fail<shape_error>(op, "initial state of shape ", s->shape(), " must be [", n_dirs, ", ", nb, ", ", h, "]");
  const std::vector<std::int64_t> lens = checked_lengths(op, lengths, nb, steps);
  const Tensor<std::int64_t, B> idc = ids.contiguous();
  const std::int64_t* id = idc.data();
  for (std::int64_t r = 0; r < rows; ++r)
    if (id[r] < 0 || id[r] >= table.size(0)) fail<index_error>(op, "id ", id[r], " is outside the table's ", table.size(0), " rows");

  const detail::StepLayout L{nb, steps, o.batch_first ? 1 : nb, o.batch_first ? steps : 1};
  const Tensor<T, B> tv = table.contiguous(), h0v = h0.defined() ? h0.contiguous() : Tensor<T, B>(), c0v = c0.defined() ? c0.contiguous() : Tensor<T, B>();
  std::vector<Tensor<T, B>> w_hh;
  for (const auto& w : dirs) w_hh.push_back(w.w_hh.value().contiguous());
  Tensor<T, B> out({rows, ldh}), last({2, nb, ldh});
  detail::for_each_direction(n_dirs, [&](std::int64_t d) {
    detail::DirectionBuffers<T> buf{w_hh[static_cast<std::size_t>(d)].data(), nullptr, nullptr, nullptr, nullptr, out.data() + d * h, last.data() + d * h,
                                    last.data() + nb * ldh + d * h, h0v.defined() ? h0v.data() + d * nb * h : nullptr,
                                    c0v.defined() ? c0v.data() + d * nb * h : nullptr, d == 1, tv.data() + d * 4 * h, id, ldg};
    detail::lstm_direction_forward<T, B>(L, 0, h, n_dirs, lens, static_cast<const T*>(nullptr), buf);
  });
  auto state = [&](std::int64_t which) { return Var<T, B>(last.select(0, which).reshape({nb, n_dirs, h}).transpose(0, 1).contiguous()); };
  return {Var<T, B>(out.reshape(o.batch_first ? Shape{nb, steps, ldh} : Shape{steps, nb, ldh})), state(0), state(1)};
}

}  // namespace dsm::nn::functional
