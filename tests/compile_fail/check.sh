#!/usr/bin/env bash
# Each case must FAIL to compile with the given sentence in the compiler's output: a bad module
# configuration is a readable compile error at the user's line, not a template backtrace puzzle.
set -uo pipefail
cxx=$1 src_dir=$2 work_dir=$3 eigen_dir=$4
mkdir -p "$work_dir"
status=0
check() {  # check <case name> <expected text> <code>
  local file="$work_dir/$1.cpp"
  printf '#include <dsm/dsm.hpp>\nint main() {\n%s\n}\n' "$3" > "$file"
  if out=$("$cxx" -std=c++20 -fsyntax-only -fopenmp -I"$src_dir/include" -isystem "$eigen_dir" "$file" 2>&1); then
    echo "FAIL $1: compiled, but should not"; status=1
  elif ! grep -qF "$2" <<<"$out"; then
    echo "FAIL $1: the error does not say \"$2\":"; head -20 <<<"$out"; status=1
  else
    echo "ok   $1: $(grep -F "$2" <<<"$out" | head -1 | sed 's/^.*error: //')"
  fi
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
exit $status
