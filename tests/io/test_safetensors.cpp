// safetensors: interchange with PyTorch (tests/reference/gen_io.py), sharding, hostile files.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"

namespace io = dsm::io;
namespace nn = dsm::nn;
namespace fs = std::filesystem;
using dsm::Tensor;

namespace {
std::string fixture_path(const std::string& name) { return std::string(DSM_FIXTURE_DIR) + "/" + name; }
std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
/// This process's scratch directory, removed with its files when the process ends (one was left
/// behind per test run before).
struct ScratchDir {
  fs::path path = fs::temp_directory_path() / ("dsm_io_test_" + std::to_string(::getpid()));
  ScratchDir() { fs::create_directories(path); }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};
fs::path scratch(const std::string& name) {
  static const ScratchDir dir;
  return dir.path / name;
}
/// A file with the given header text and `data_bytes` bytes of data.
std::string make_file(const std::string& header, std::size_t data_bytes, std::uint64_t declared = UINT64_MAX) {
  const std::uint64_t n = declared == UINT64_MAX ? header.size() : declared;
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  return bytes + header + std::string(data_bytes, '\x01');
}
std::string open_error(const std::string& bytes) {
  const auto path = scratch("hostile.safetensors").string();
  write_bytes(path, bytes);
  try {
    io::SafetensorsFile f(path);
    for (const auto& n : f.names()) (void)f.load(n);
  } catch (const dsm::io_error& e) {
    return e.what();
  }
  return "";
}

using Mlp = nn::Sequential<nn::Linear<{.in_features = 4, .out_features = 8}>, nn::GELU, nn::Linear<{.in_features = 8, .out_features = 3}>>;
}  // namespace

TEST_CASE("safetensors: a PyTorch model's weights load into dsm and reproduce its outputs") {
  io::SafetensorsFile f(fixture_path("torch_mlp.safetensors"));
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.names() == std::vector<std::string>{"0.bias", "0.weight", "2.bias", "2.weight"});
  CHECK(f.info("0.weight").shape == dsm::Shape{8, 4});
  Mlp mlp;
  mlp.load_state_dict(f.state_dict());
  const auto& fx = dsm_test::fixture_file("io.txt");
  dsm::Var<float> x(fx.get<float>("mlp.x"));
  dsm_test::check_close(mlp(x).value(), fx.get("mlp.y"), 1e-5, 1e-6);
}

TEST_CASE("safetensors: dsm writes the reference layout byte for byte") {
  Mlp mlp;
  mlp.load_state_dict(io::SafetensorsFile(fixture_path("torch_mlp.safetensors")).state_dict());
  const auto out = scratch("mlp.safetensors").string();
  io::save_safetensors(out, mlp.state_dict(), {{"format", "pt"}});
  CHECK(read_bytes(out) == read_bytes(fixture_path("torch_mlp.safetensors")));

  io::SafetensorsFile all(fixture_path("dtypes.safetensors"));
  const auto& fx = dsm_test::fixture_file("io.txt");
  for (const auto& name : all.names()) {
    CAPTURE(name);
    dsm_test::check_close(all.load(name).to<double>(), fx.get("dtypes." + name), 0, 0);
  }
  CHECK(all.load("bf16").dtype() == dsm::dtype::bfloat16);
  CHECK(all.load("flag").dtype() == dsm::dtype::boolean);
  CHECK_THROWS_WITH_AS(all.load("bf16").get<float>(), "AnyTensor::get: holds bfloat16, not float32", dsm::dtype_error);
  CHECK(all.load("bf16").to<float>()(1) == -3.5f);  // converts on request
  CHECK(all.load("scalar").shape() == dsm::Shape{});
  CHECK(all.load("empty").shape() == dsm::Shape{0, 3});
  const auto again = scratch("dtypes.safetensors").string();
  io::save_safetensors(again, all.state_dict(), all.metadata());
  CHECK(read_bytes(again) == read_bytes(fixture_path("dtypes.safetensors")));
}

TEST_CASE("safetensors: loaded tensors are writable copy-on-write views of the file") {
  io::SafetensorsFile f(fixture_path("torch_mlp.safetensors"));
  Tensor<float> w = f.load("0.weight").get<float>();
  const float before = w(0, 0);
  w(0, 0) = 42.f;  // private mapping: the file is untouched
  CHECK(io::SafetensorsFile(fixture_path("torch_mlp.safetensors")).load("0.weight").get<float>()(0, 0) == before);
}

TEST_CASE("safetensors: sharded checkpoints with an index, loaded lazily") {
  Mlp mlp;
  const auto dir = scratch("sharded").string();
  // In state-dict order: 0.weight 128 B, 0.bias 32 B, 2.weight 96 B, 2.bias 12 B; no two fit in 100 B.
  const auto files = io::save_sharded(dir, mlp.state_dict(), 100);
  CHECK(files.size() == 4);
  CHECK(files[0] == "model-00001-of-00004.safetensors");
  const std::string index = read_bytes(dir + "/model.safetensors.index.json");
  CHECK(index.find("\"total_size\":268") != std::string::npos);
  CHECK(index.find("\"2.weight\":\"model-00003-of-00004.safetensors\"") != std::string::npos);
  io::ShardedCheckpoint ck(dir + "/model.safetensors.index.json");
  CHECK(ck.open_shards() == 0);
  CHECK(ck.load("2.bias").shape() == dsm::Shape{3});
  CHECK(ck.open_shards() == 1);
  Mlp other;
  other.load_state_dict(io::load_checkpoint(dir));
  CHECK(other.get<2>().weight.value().to_vector() == mlp.get<2>().weight.value().to_vector());
  CHECK_THROWS_WITH_AS(ck.load("nope"), doctest::Contains("no tensor named 'nope'"), dsm::io_error);
  write_bytes(dir + "/model.safetensors.index.json", "{\"weight_map\":{\"a\":\"../etc/passwd\"}}");
  CHECK_THROWS_WITH_AS(io::ShardedCheckpoint(dir + "/model.safetensors.index.json"), doctest::Contains("is not a shard file name"), dsm::io_error);
}

TEST_CASE("checkpoint folders: missing parents are created, a file in the way is an io_error, a folder of one file loads") {
  Mlp mlp;
  const std::string nested = scratch("deep").string() + "/a/b/";  // trailing separator, three missing levels
  io::save_sharded(nested, mlp.state_dict(), 1'000'000);
  CHECK(fs::is_regular_file(nested + "model.safetensors.index.json"));
  CHECK(fs::is_regular_file(nested + "model-00001-of-00001.safetensors"));
  Mlp from_index;
  from_index.load_state_dict(io::load_checkpoint(nested));  // a folder holding an index
  CHECK(from_index.get<0>().weight.value().to_vector() == mlp.get<0>().weight.value().to_vector());

  const std::string single = scratch("single").string();
  fs::create_directories(single);
  io::save_safetensors(single + "/model.safetensors", mlp.state_dict());
  Mlp from_folder;
  from_folder.load_state_dict(io::load_checkpoint(single));  // a folder holding model.safetensors
  CHECK(from_folder.get<2>().bias.value().to_vector() == mlp.get<2>().bias.value().to_vector());

  const std::string blocker = scratch("blocker").string();
  write_bytes(blocker, "not a folder");
  CHECK_THROWS_WITH_AS(io::save_sharded(blocker + "/ckpt", mlp.state_dict(), 1'000'000), doctest::Contains("cannot create the directory"), dsm::io_error);
  CHECK_THROWS_WITH_AS(io::save_sharded(blocker, mlp.state_dict(), 1'000'000), doctest::Contains("exists and is not a directory"), dsm::io_error);
}

TEST_CASE("safetensors: hostile and corrupt files give io_error naming the problem") {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK(open_error(make_file(ok, 8)).empty());
  CHECK(open_error("abc").find("too short") != std::string::npos);
  CHECK(open_error(make_file(ok, 8, 200'000'000)).find("exceeds the limit of 100000000 bytes") != std::string::npos);
  CHECK(open_error(make_file(ok, 8, 5000)).find("runs past the end of the file") != std::string::npos);
  CHECK(open_error(make_file(ok, 4)).find("outside the data buffer of 4 bytes") != std::string::npos);  // truncated data
  CHECK(open_error(make_file(ok, 12)).find("the data buffer has 12 bytes but the tensors cover 8") != std::string::npos);
  CHECK(open_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8)).find("invalid JSON header at byte") != std::string::npos);
  CHECK(open_error(make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)).find("has 8 bytes of data but its dtype and shape [3] need 12") != std::string::npos);
  CHECK(open_error(make_file(R"({"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", 8)).find("unsupported dtype F8_E4M3") != std::string::npos);
  CHECK(open_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8)).find("outside the data buffer") != std::string::npos);
  CHECK(open_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8))
            .find("overlap or hole") != std::string::npos);
  CHECK(open_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)).find("starts at byte 4 of the data buffer, expected 0") != std::string::npos);
  CHECK(open_error(make_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)).find("not a non-negative integer") != std::string::npos);
  CHECK(open_error(make_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", 8)).find("overflows") != std::string::npos);
  CHECK(open_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999999]}})", 8)).find("data_offsets that are not") != std::string::npos);
  CHECK(open_error(make_file(std::string(100, '[') + std::string(100, ']'), 0)).find("nested too deeply") != std::string::npos);
  CHECK(open_error(make_file(R"({"__metadata__":{"k":1}})", 0)).find("is not a string") != std::string::npos);
  CHECK(open_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8)).find("duplicate key") != std::string::npos);
  CHECK(open_error("").find("too short") != std::string::npos);
  CHECK_THROWS_WITH_AS(io::SafetensorsFile("/nonexistent/x.safetensors"), doctest::Contains("/nonexistent/x.safetensors: cannot open"), dsm::io_error);
}

TEST_CASE("safetensors: every truncation and every single-byte flip of a real file is caught or harmless") {
  const std::string good = read_bytes(fixture_path("dtypes.safetensors"));
  for (std::size_t len = 0; len < good.size(); ++len) {
    const std::string err = open_error(good.substr(0, len));
    CHECK_MESSAGE(!err.empty(), "truncated to " << len << " bytes");
  }
  std::uint64_t n = 0;
  std::memcpy(&n, good.data(), 8);
  int rejected = 0;
  for (std::size_t i = 0; i < 8 + n; ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x5A);
    rejected += !open_error(bad).empty();  // must not crash or over-read (checked under ASan in CI)
  }
  CHECK(rejected > static_cast<int>(n) / 2);
}
