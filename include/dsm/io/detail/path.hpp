// dsm/io/detail/path.hpp: the few path operations checkpoints need, on POSIX calls.
//
// <filesystem> would do, but it is the heaviest standard header: every translation unit that
// includes <dsm/dsm.hpp> parsed it (about 0.7 s and 60 MB of compiler memory) for four calls.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "../../core/error.hpp"

namespace dsm::io::detail {

/// dir/name, with one separator ("name" alone when dir is empty).
inline std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + '/' + name;
}
/// Everything before the last separator ("" for a bare file name, "/" for a file at the root).
inline std::string parent_path(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : path.substr(0, slash);
}
/// The part after the last separator.
inline std::string file_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}
inline bool path_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}
inline bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
/// Creates `dir` and its missing parents (mkdir -p); io_error naming the part that failed.
inline void create_directories(const char* op, const std::string& dir) {
  for (std::size_t end = dir.find('/', 1);; end = dir.find('/', end + 1)) {
    const std::string part = dir.substr(0, end);
    if (!part.empty() && ::mkdir(part.c_str(), 0777) != 0 && errno != EEXIST)
      fail<io_error>(op, part, ": cannot create the directory (", std::strerror(errno), ")");
    if (end == std::string::npos) break;
  }
  if (!is_directory(dir)) fail<io_error>(op, dir, ": exists and is not a directory");
}

}  // namespace dsm::io::detail
