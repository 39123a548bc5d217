#!/usr/bin/env bash
# Each case must FAIL to compile with the given sentence in the compiler's output: a bad module
# configuration is a readable compile error at the user's line, not a template backtrace puzzle.
set -uo pipefail
cxx=$1 src_dir=$2 work_dir=$3 eigen_dir=$4
mkdir -p "$work_dir"
# Cases compile two at a time (each is a full front-end pass over <dsm/dsm.hpp>); results are
# printed in order at the end.
cases=()
check() {  # check <case name> <expected text> <code>
  local file="$work_dir/$1.cpp"
  cases+=("$1")
  printf '#include <dsm/dsm.hpp>\nint main() {\n%s\n}\n' "$3" > "$file"
  printf '%s' "$2" > "$work_dir/$1.expect"
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
  ( "$cxx" -std=c++20 -fsyntax-only -fopenmp -I"$src_dir/include" -isystem "$eigen_dir" "$file" > "$work_dir/$1.out" 2>&1
    echo $? > "$work_dir/$1.rc" ) &
}
report() {
  local status=0 name expect out
  for name in "${cases[@]}"; do
    expect=$(cat "$work_dir/$name.expect"); out=$(cat "$work_dir/$name.out")
    if [ "$(cat "$work_dir/$name.rc")" = 0 ]; then
      echo "FAIL $name: compiled, but should not"; status=1
    elif ! grep -qF "$expect" <<<"$out"; then
      echo "FAIL $name: the error does not say \"$expect\":"; head -20 <<<"$out"; status=1
    else
      echo "ok   $name: $(grep -F "$expect" <<<"$out" | head -1 | sed 's/^.*error: //')"
    fi
  done
  return $status
}
check linear_zero_in "Linear: in_features must be positive" 'dsm::nn::Linear<{.in_features = 0, .out_features = 2}> l;'
check norm_zero_dim "a norm layer's dim must be positive" 'dsm::nn::RMSNorm<{.dim = 0}> n;'
check mlp_zero_hidden "MLP: in_features, hidden and out_features must be positive" 'dsm::nn::MLP<{.in_features = 4, .hidden = 0, .out_features = 4}> m;'
check embedding_zero "Embedding: num_embeddings must be positive" 'dsm::nn::Embedding<{.num_embeddings = 0, .dim = 4}> e;'
check var_of_int "constraints not satisfied" 'dsm::Var<int> v;'
check mixed_types "the expression's element type differs from the Var's" 'dsm::Var<float> a(dsm::Tensor<float>::ones({2}), true); dsm::Var<double> b = a * 2.f;'
check moe_top_k "MoE: top_k must not exceed the number of experts" 'dsm::moe::MoELayer<{.d_model = 8, .d_ff = 8, .n_experts = 4, .top_k = 5}> m;'
check moe_groups "MoE: n_experts must be divisible by n_groups" 'dsm::moe::MoELayer<{.d_model = 8, .d_ff = 8, .n_experts = 8, .top_k = 2, .n_groups = 3}> m;'
check moe_topk_groups "MoE: topk_groups must not exceed n_groups" 'dsm::nn::MoE<{.d_model = 8, .d_ff = 8, .n_experts = 8, .top_k = 2, .n_groups = 2, .topk_groups = 3}> m;'
check moe_kept_groups "MoE: top_k must not exceed the experts in the kept groups" 'dsm::moe::MoELayer<{.d_model = 8, .d_ff = 8, .n_experts = 8, .top_k = 3, .n_groups = 4, .topk_groups = 1}> m;'
check tagger_tags "BiLSTMCRF: vocab_size, embedding_dim, hidden_size, num_layers and num_tags must be positive" 'dsm::models::BiLSTMCRF<{.vocab_size = 100, .num_tags = 0}> m;'
check joint_intents "JointIntentSlot: num_intents must be positive" 'dsm::models::JointIntentSlot<{.vocab_size = 100, .num_tags = 5}> m;'
check lstm_hidden "LSTM: hidden_size must be positive" 'dsm::nn::LSTM<{.input_size = 4, .hidden_size = 0}> m;'
check checkpoint_result "checkpoint: f must return a Var of the inputs' type or a std::vector of them" 'dsm::Var<float> x(dsm::Tensor<float>::ones({2}), true); auto y = dsm::checkpoint([](const dsm::Var<float>&) { return 1; }, x);'
check lazy_backward "this is an unevaluated expression, not a Var or a Tensor (auto keeps the lazy tree)" 'dsm::Var<float> a(dsm::Tensor<float>::ones({2}), true); auto loss = dsm::sum(a) + dsm::sum(a); loss.backward();'
check lazy_item "store it first, as in dsm::Var<float> loss = a + b;" 'const auto t = dsm::Tensor<float>::ones({1}); auto e = t * 2.f; e.item();'
check lazy_value "store it first, as in dsm::Var<float> loss = a + b;" 'dsm::Var<float> a(dsm::Tensor<float>::ones({2}), true); auto e = dsm::where(a > 0.f, a, 0.f); e.value();'
check lazy_grad "store it first, as in dsm::Var<float> loss = a + b;" 'dsm::Var<float> a(dsm::Tensor<float>::ones({2}), true); auto e = -a; e.grad();'
wait
report
