// Checkpoints: a model and its optimizer saved as safetensors, reloaded, and training resumed
// bit for bit; the same weights as a sharded checkpoint. Built and run in CI;
// docs/checkpoints.md walks through it.
#include <cstdio>
#include <filesystem>

#include <dsm/dsm.hpp>

namespace nn = dsm::nn;
using Net = nn::MLP<{.in_features = 8, .hidden = 32, .out_features = 8, .activation = nn::Activation::gelu}>;

double train_steps(Net& net, dsm::optim::AdamW<>& opt, int steps) {
  dsm::Generator data(7);  // the same batches every time
  double last = 0;
  for (int s = 0; s < steps; ++s) {
    const dsm::Var<float> x(dsm::Tensor<float>::randn({16, 8}, data));
    opt.zero_grad();
    auto loss = nn::functional::mse_loss(net(x), x);  // learn the identity
    loss.backward();
    opt.step();
    last = loss.item();
  }
  return last;
}

int main() {
  const auto dir = std::filesystem::temp_directory_path() / "dsm_checkpoint_example";
  std::filesystem::create_directories(dir);

  Net net;
  dsm::optim::AdamW opt(net.named_parameters(), {.lr = 1e-2});
  train_steps(net, opt, 50);

  // One file for the model, one for the optimizer state (moments, step count, learning rate).
  dsm::io::save_safetensors((dir / "model.safetensors").string(), net.state_dict(), {{"format", "pt"}});
  dsm::io::save_safetensors((dir / "optimizer.safetensors").string(), opt.state_dict());

  Net resumed;
  dsm::optim::AdamW resumed_opt(resumed.named_parameters(), {.lr = 1e-2});
  resumed.load_state_dict(dsm::io::load_checkpoint((dir / "model.safetensors").string()));
  resumed_opt.load_state_dict(dsm::io::SafetensorsFile((dir / "optimizer.safetensors").string()).state_dict());

  const double a = train_steps(net, opt, 20), b = train_steps(resumed, resumed_opt, 20);
  std::printf("loss after 20 more steps: original %.8f, resumed %.8f (%s)\n", a, b, a == b ? "identical" : "DIFFERENT");

  // Large models are written in shards with an index, and read back lazily.
  const auto files = dsm::io::save_sharded((dir / "sharded").string(), net.state_dict(), 1024);
  dsm::io::ShardedCheckpoint ck((dir / "sharded" / "model.safetensors.index.json").string());
  std::printf("%zu shards; fc2.weight is %lld x %lld\n", files.size(), static_cast<long long>(ck.load("fc2.weight").shape()[0]),
              static_cast<long long>(ck.load("fc2.weight").shape()[1]));
  std::filesystem::remove_all(dir);
  return a == b ? 0 : 1;
}
