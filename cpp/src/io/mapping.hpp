#pragma once
// A read-only view of a whole file through a private, copy-on-write memory map (private to the io module).
#include <cstdint>
#include <memory>
#include <string>

namespace metaprobe::io {

class Mapping {
 public:
  /// Maps `path` whole; throws PathNotFound or IoError naming the path and the OS error.
  static std::shared_ptr<const Mapping> open(const std::string& path);
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  const uint8_t* data() const { return data_; }
  uint8_t* mutable_data() const { return data_; }  // pages are private copy-on-write: writes never reach the file
  uint64_t size() const { return size_; }

 private:
  Mapping() = default;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

/// "<path>: <strerror(err)>", and throws PathNotFound for ENOENT/ENOTDIR, IoError otherwise.
[[noreturn]] void throw_os_error(const std::string& what, const std::string& path, int err);

}  // namespace metaprobe::io
