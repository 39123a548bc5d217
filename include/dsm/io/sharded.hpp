// dsm/io/sharded.hpp: sharded safetensors checkpoints, as HuggingFace lays them out:
// model-00001-of-00003.safetensors ... and model.safetensors.index.json holding
// {"metadata": {"total_size": bytes}, "weight_map": {tensor name: shard file}}.
//
//   dsm::io::save_sharded("ckpt/", model.state_dict(), 2'000'000'000);   // shards of <= 2 GB
//   dsm::io::ShardedCheckpoint ck("ckpt/model.safetensors.index.json");  // reads the index only
//   auto w = ck.load("blocks.3.attn.wq.weight");                          // maps that one shard
//   model.load_state_dict(dsm::io::load_checkpoint("ckpt/"));            // a directory or a file
#pragma once

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>

#include "detail/path.hpp"
#include "safetensors.hpp"

namespace dsm::io {

inline constexpr const char* index_file_name = "model.safetensors.index.json";

/// Writes `tensors` into shards of at most `max_shard_bytes` (a larger tensor gets a shard of its
/// own), in state-dict order, plus the index. Returns the shard file names.
inline std::vector<std::string> save_sharded(const std::string& dir, const nn::StateDict& tensors, std::uint64_t max_shard_bytes,
                                             const std::map<std::string, std::string>& metadata = {}) {
  if (max_shard_bytes == 0) fail<io_error>("save_sharded", dir, ": max_shard_bytes must be positive");
  detail::create_directories("save_sharded", dir);
  std::vector<nn::StateDict> shards(1);
  std::uint64_t in_shard = 0, total = 0;
  for (const auto& [name, t] : tensors) {
    if (in_shard > 0 && in_shard + t.nbytes() > max_shard_bytes) shards.emplace_back(), in_shard = 0;
    shards.back().insert(name, t);
    in_shard += t.nbytes();
    total += t.nbytes();
  }
  std::vector<std::string> files;
  std::string weight_map;
  for (std::size_t i = 0; i < shards.size(); ++i) {
    char file[64];
    std::snprintf(file, sizeof file, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    save_safetensors(detail::join_path(dir, file), shards[i], metadata);
    files.emplace_back(file);
    for (const auto& [name, t] : shards[i]) {
      if (!weight_map.empty()) weight_map += ',';
      weight_map += json::quote(name);
      weight_map += ':';
      weight_map += json::quote(file);
    }
  }
  std::ofstream index(detail::join_path(dir, index_file_name), std::ios::trunc);
  index << "{\"metadata\":{\"total_size\":" << total << "},\"weight_map\":{" << weight_map << "}}\n";
  if (!index.flush()) fail<io_error>("save_sharded", dir, ": cannot write the index");
  return files;
}

/// A sharded checkpoint: the index is read at once, each shard is mapped when first needed.
class ShardedCheckpoint {
 public:
  explicit ShardedCheckpoint(const std::string& index_path) : dir_(detail::parent_path(index_path)) {
    std::ifstream in(index_path, std::ios::binary);
    if (!in) fail<io_error>("ShardedCheckpoint", index_path, ": cannot open");
    in.seekg(0, std::ios::end);
    const auto size = static_cast<std::uint64_t>(in.tellg());
    if (size > max_header_bytes) fail<io_error>("ShardedCheckpoint", index_path, ": index of ", size, " bytes exceeds the limit");
    in.seekg(0);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    json::Value root;
    try {
      root = json::parse(text);
    } catch (const json::ParseError& e) {
      fail<io_error>("ShardedCheckpoint", index_path, ": invalid JSON at byte ", e.offset, ": ", e.what);
    }
    const json::Value* map = root.kind == json::Value::Kind::object ? root.find("weight_map") : nullptr;
    if (!map || map->kind != json::Value::Kind::object) fail<io_error>("ShardedCheckpoint", index_path, ": no weight_map object");
    for (const auto& [name, file] : map->members) {
      if (file.kind != json::Value::Kind::string || file.text.empty() || file.text.find('/') != std::string::npos || file.text == "..")
        fail<io_error>("ShardedCheckpoint", index_path, ": weight_map entry '", name, "' is not a shard file name in the same folder");
      names_.push_back(name);
      shard_of_[name] = file.text;
    }
  }
  const std::vector<std::string>& names() const { return names_; }
  /// The named tensor, from its shard (mapped on first use and kept open).
  AnyTensor load(const std::string& name) {
    auto it = shard_of_.find(name);
    if (it == shard_of_.end()) fail<io_error>("ShardedCheckpoint", dir_, ": no tensor named '", name, "'");
    auto& shard = shards_[it->second];
    if (!shard) shard = std::make_unique<SafetensorsFile>(detail::join_path(dir_, it->second));
    if (!shard->contains(name)) fail<io_error>("ShardedCheckpoint", shard->path(), ": the index places '", name, "' here but the shard lacks it");
    return shard->load(name);
  }
  nn::StateDict state_dict() {
    nn::StateDict d;
    for (const auto& n : names_) d.insert(n, load(n));
    return d;
  }
  /// Number of shards mapped so far (loading is lazy).
  std::size_t open_shards() const { return shards_.size(); }

 private:
  std::string dir_;
  std::vector<std::string> names_;
  std::map<std::string, std::string> shard_of_;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> shards_;
};

/// All tensors of a checkpoint: a .safetensors file, an index file, or a folder holding either.
inline nn::StateDict load_checkpoint(const std::string& path) {
  std::string p = path;
  if (detail::is_directory(p))
    p = detail::path_exists(detail::join_path(p, index_file_name)) ? detail::join_path(p, index_file_name) : detail::join_path(p, "model.safetensors");
  if (detail::file_name(p) == index_file_name) return ShardedCheckpoint(p).state_dict();
  return SafetensorsFile(p).state_dict();
}

}  // namespace dsm::io
