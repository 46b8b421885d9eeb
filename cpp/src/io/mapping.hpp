#pragma once
// An open file and an optional read-only view of it through a private, copy-on-write memory map (private to
// the io module). Reads through the descriptor (pread) never fault; a mapped page past a shrunk end does.
#include <cstdint>
#include <memory>
#include <string>

namespace metaprobe::io {

/// An open regular file, closed on destruction.
class FileHandle {
 public:
  /// Opens `path` read-only; throws PathNotFound, or IoError naming the path and the OS error (directories
  /// and other non-regular files are refused).
  static std::shared_ptr<const FileHandle> open(const std::string& path);
  ~FileHandle();
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  /// Size at open.
  uint64_t size() const { return size_; }
  /// Size now (fstat), which differs from size() when the file was truncated or extended in place.
  uint64_t current_size() const;
  /// Reads exactly `n` bytes at `offset`; throws IoError naming the file when it now ends before them.
  void read_exact(void* dst, uint64_t n, uint64_t offset, const std::string& what) const;

 private:
  FileHandle() = default;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string path_;
};

class Mapping {
 public:
  /// Maps `file` whole; throws IoError naming the path and the OS error.
  static std::shared_ptr<const Mapping> open(const FileHandle& file);
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

/// "<what> '<path>': <strerror(err)>", and throws PathNotFound for ENOENT/ENOTDIR, IoError otherwise.
[[noreturn]] void throw_os_error(const std::string& what, const std::string& path, int err);

/// The IoError for a file that now ends before the bytes [begin, end) its header promised.
[[noreturn]] void throw_shrunk(const std::string& path, const std::string& what, uint64_t begin, uint64_t end,
                               uint64_t size_at_open, uint64_t size_now);

}  // namespace metaprobe::io
