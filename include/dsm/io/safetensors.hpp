// dsm/io/safetensors.hpp: reading and writing the safetensors format.
//
// The format (github.com/huggingface/safetensors): 8 bytes of little-endian header length N, N
// bytes of JSON mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the byte buffer after the header) and an optional "__metadata__" map of
// strings, then the byte buffer. The buffer is fully covered by the tensors, without holes or
// overlaps. dsm writes it as the reference implementation does: tensors ordered by dtype
// (widest first) then name, compact JSON with "__metadata__" first, the header padded with
// spaces to a multiple of 8 bytes so every tensor is 8-byte aligned.
//
//   dsm::io::save_safetensors("model.safetensors", model.state_dict(), {{"format", "pt"}});
//   dsm::io::SafetensorsFile f("model.safetensors");     // maps the file, checks the header
//   model.load_state_dict(f.state_dict());               // tensors are views of the mapping
//
// Every offset, length and shape is checked before use; a truncated or hostile file gives a
// dsm::io_error naming the file and the problem, never an over-read or a huge allocation.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../core/any_tensor.hpp"
#include "../nn/module.hpp"
#include "detail/json.hpp"

namespace dsm::io {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

/// The header may not exceed this many bytes (as the reference implementation enforces).
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

namespace detail {

/// The safetensors dtype names of dsm's element types, in the reference implementation's order
/// (its writer sorts tensors by this rank, descending).
struct DtypeName {
  dtype id;
  const char* name;
  int rank;
};
inline constexpr DtypeName dtype_names[] = {
    {dtype::boolean, "BOOL", 0}, {dtype::uint8, "U8", 1},   {dtype::int8, "I8", 2},      {dtype::float16, "F16", 7},
    {dtype::bfloat16, "BF16", 8}, {dtype::int32, "I32", 9}, {dtype::float32, "F32", 11}, {dtype::float64, "F64", 12},
    {dtype::int64, "I64", 13},
};
inline const DtypeName& dtype_info(dtype d) {
  for (const auto& e : dtype_names)
    if (e.id == d) return e;
  fail<io_error>("safetensors", "no safetensors name for dtype ", dtype_name(d));
}

inline std::size_t element_size(dtype d) {
  switch (d) {
    case dtype::float64: case dtype::int64: return 8;
    case dtype::float32: case dtype::int32: return 4;
    case dtype::bfloat16: case dtype::float16: return 2;
    default: return 1;
  }
}

/// A read-only file mapped privately (copy-on-write), so tensors viewing it may be written to.
class Mapping {
 public:
  explicit Mapping(const std::string& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail<io_error>("safetensors", path, ": cannot open (", std::strerror(errno), ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      fail<io_error>("safetensors", path, ": cannot stat (", std::strerror(errno), ")");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        fail<io_error>("safetensors", path, ": cannot map (", std::strerror(errno), ")");
      }
      data_ = static_cast<std::byte*>(p);
    }
    ::close(fd);
  }
  ~Mapping() {
    if (data_) ::munmap(data_, size_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

/// Parses a non-negative integer that fits in 64 bits (JSON text, no sign, fraction or exponent).
inline bool parse_u64(const json::Value& v, std::uint64_t& out) {
  if (v.kind != json::Value::Kind::number || v.text.empty() || v.text.size() > 20) return false;
  std::uint64_t x = 0;
  for (const char c : v.text) {
    if (c < '0' || c > '9') return false;
    const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (x > (UINT64_MAX - d) / 10) return false;
    x = x * 10 + d;
  }
  out = x;
  return true;
}

template <class T>
AnyTensor view_tensor(const std::shared_ptr<Mapping>& map, std::byte* data, const Shape& shape) {
  T* p = reinterpret_cast<T*>(data);
  if (reinterpret_cast<std::uintptr_t>(p) % alignof(T) != 0) {  // unaligned: copy out
    Tensor<T> t(shape);
    std::memcpy(static_cast<void*>(t.data()), data, t.nbytes());
    return t;
  }
  return Tensor<T>::from_blob(p, shape, [keep = map](void*) {});  // keeps the mapping alive
}

inline AnyTensor make_view(dtype d, const std::shared_ptr<Mapping>& map, std::byte* data, const Shape& shape) {
  switch (d) {
    case dtype::float32: return view_tensor<float>(map, data, shape);
    case dtype::float64: return view_tensor<double>(map, data, shape);
    case dtype::bfloat16: return view_tensor<bf16>(map, data, shape);
    case dtype::float16: return view_tensor<f16>(map, data, shape);
    case dtype::int8: return view_tensor<std::int8_t>(map, data, shape);
    case dtype::uint8: return view_tensor<std::uint8_t>(map, data, shape);
    case dtype::int32: return view_tensor<std::int32_t>(map, data, shape);
    case dtype::int64: return view_tensor<std::int64_t>(map, data, shape);
    case dtype::boolean: return view_tensor<bool>(map, data, shape);
  }
  fail<io_error>("safetensors", "unsupported dtype");
}
}  // namespace detail

/// What the header says of one tensor.
struct TensorInfo {
  ::dsm::dtype dtype;
  Shape shape;
  std::uint64_t begin = 0, end = 0;  // byte range in the data buffer
};

/// A safetensors file, memory-mapped and validated on opening; tensors are loaded on request as
/// views of the mapping (no copy when aligned, which the format's padding guarantees for files
/// written by dsm or the reference writer).
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path) : map_(std::make_shared<detail::Mapping>(path)) { parse_header(); }

  const std::string& path() const { return map_->path(); }
  /// Tensor names in file order (ascending data offset).
  const std::vector<std::string>& names() const { return names_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return infos_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const {
    auto it = infos_.find(name);
    if (it == infos_.end()) fail<io_error>("safetensors", path(), ": no tensor named '", name, "'");
    return it->second;
  }
  /// The named tensor, viewing the mapped file.
  AnyTensor load(const std::string& name) const {
    const TensorInfo& i = info(name);
    return detail::make_view(i.dtype, map_, map_->data() + data_start_ + i.begin, i.shape);
  }
  /// Every tensor, by name.
  nn::StateDict state_dict() const {
    nn::StateDict d;
    for (const auto& n : names_) d.insert(n, load(n));
    return d;
  }

 private:
  template <class... Args>
  [[noreturn]] void bad(const Args&... args) const {
    fail<io_error>("safetensors", path(), ": ", args...);
  }

  void parse_header() {
    const std::size_t size = map_->size();
    if (size < 8) bad("file of ", size, " bytes is too short for the 8-byte header length");
    std::uint64_t n = 0;
    std::memcpy(&n, map_->data(), 8);
    if (n > max_header_bytes) bad("header length ", n, " exceeds the limit of ", max_header_bytes, " bytes");
    if (n > size - 8) bad("header length ", n, " runs past the end of the file (", size, " bytes)");
    data_start_ = 8 + n;
    const std::string_view text(reinterpret_cast<const char*>(map_->data()) + 8, n);
    json::Value root;
    try {
      root = json::parse(text);
    } catch (const json::ParseError& e) {
      bad("invalid JSON header at byte ", 8 + e.offset, ": ", e.what);
    }
    if (root.kind != json::Value::Kind::object) bad("the header is not a JSON object");

    const std::uint64_t data_size = size - data_start_;
    std::vector<std::pair<std::uint64_t, std::string>> by_offset;
    for (const auto& [name, v] : root.members) {
      if (name == "__metadata__") {
        if (v.kind != json::Value::Kind::object) bad("__metadata__ is not an object");
        for (const auto& [k, m] : v.members) {
          if (m.kind != json::Value::Kind::string) bad("__metadata__ value of '", k, "' is not a string");
          metadata_[k] = m.text;
        }
        continue;
      }
      if (v.kind != json::Value::Kind::object) bad("entry '", name, "' is not an object");
      const json::Value* dt = v.find("dtype");
      const json::Value* shape = v.find("shape");
      const json::Value* offsets = v.find("data_offsets");
      if (!dt || !shape || !offsets || v.members.size() != 3) bad("entry '", name, "' needs exactly dtype, shape and data_offsets");
      TensorInfo info{};
      bool known = false;
      if (dt->kind == json::Value::Kind::string)
        for (const auto& e : detail::dtype_names)
          if (dt->text == e.name) info.dtype = e.id, known = true;
      if (!known) bad("entry '", name, "' has unsupported dtype ", dt->kind == json::Value::Kind::string ? dt->text : std::string("(not a string)"));
      if (shape->kind != json::Value::Kind::array || shape->items.size() > static_cast<std::size_t>(max_rank))
        bad("entry '", name, "' has a shape that is not an array of at most ", max_rank, " sizes");
      std::uint64_t bytes = detail::element_size(info.dtype);
      for (const auto& d : shape->items) {
        std::uint64_t s = 0;
        if (!detail::parse_u64(d, s)) bad("entry '", name, "' has a shape entry that is not a non-negative integer");
        if (s != 0 && bytes > UINT64_MAX / s) bad("entry '", name, "' has a shape whose byte size overflows 64 bits");
        bytes *= s;
        info.shape.push_back(static_cast<std::int64_t>(s));
      }
      if (offsets->kind != json::Value::Kind::array || offsets->items.size() != 2 || !detail::parse_u64(offsets->items[0], info.begin) ||
          !detail::parse_u64(offsets->items[1], info.end))
        bad("entry '", name, "' has data_offsets that are not two non-negative integers");
      if (info.begin > info.end || info.end > data_size)
        bad("entry '", name, "' has data_offsets [", info.begin, ", ", info.end, "] outside the data buffer of ", data_size, " bytes");
      if (info.end - info.begin != bytes)
        bad("entry '", name, "' has ", info.end - info.begin, " bytes of data but its dtype and shape ", info.shape, " need ", bytes);
      infos_[name] = info;
      by_offset.emplace_back(info.begin, name);
    }
    // The tensors must tile the buffer: sorted by offset, each starts where the previous ended.
    std::sort(by_offset.begin(), by_offset.end());
    std::uint64_t at = 0;
    for (const auto& [begin, name] : by_offset) {
      if (begin != at) bad("tensor '", name, "' starts at byte ", begin, " of the data buffer, expected ", at, " (overlap or hole)");
      at = infos_[name].end;
      names_.push_back(name);
    }
    if (at != data_size) bad("the data buffer has ", data_size, " bytes but the tensors cover ", at);
  }

  std::shared_ptr<detail::Mapping> map_;
  std::uint64_t data_start_ = 0;
  std::map<std::string, TensorInfo> infos_;
  std::vector<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

/// Writes `tensors` as a safetensors file (replacing it). Requires names not equal to "__metadata__".
inline void save_safetensors(const std::string& path, const nn::StateDict& tensors, const std::map<std::string, std::string>& metadata = {}) {
  std::vector<std::pair<std::string, AnyTensor>> items;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail<io_error>("save_safetensors", path, ": '__metadata__' cannot name a tensor");
    if (!t.defined()) fail<io_error>("save_safetensors", path, ": tensor '", name, "' is undefined");
    items.emplace_back(name, t.contiguous());
  }
  std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
    const int ra = detail::dtype_info(a.second.dtype()).rank, rb = detail::dtype_info(b.second.dtype()).rank;
    return ra != rb ? ra > rb : a.first < b.first;
  });
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {  // appended piece by piece (GCC 12 misreports "x" + string&&)
      if (!first) header += ',';
      header += json::quote(k);
      header += ':';
      header += json::quote(v);
      first = false;
    }
    header += "}";
  }
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& [name, t] = items[i];
    if (header.size() > 1) header += ",";
    header += json::quote(name);
    header += ":{\"dtype\":\"";
    header += detail::dtype_info(t.dtype()).name;
    header += "\",\"shape\":[";
    for (int d = 0; d < t.shape().rank(); ++d) {
      if (d) header += ',';
      header += std::to_string(t.shape()[d]);
    }
    header += "],\"data_offsets\":[";
    header += std::to_string(offset);
    header += ',';
    header += std::to_string(offset + t.nbytes());
    header += "]}";
    offset += t.nbytes();
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail<io_error>("save_safetensors", path, ": cannot open for writing");
    const std::uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const auto& [name, t] : items) out.write(static_cast<const char*>(t.data()), static_cast<std::streamsize>(t.nbytes()));
    if (!out.flush()) fail<io_error>("save_safetensors", path, ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail<io_error>("save_safetensors", path, ": cannot rename the temporary file");
}

}  // namespace dsm::io
