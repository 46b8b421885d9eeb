#pragma once
// The one way the library writes a file: whole or not at all (a temporary beside the target, fsynced, renamed
// over it, then the directory fsynced), with the mode a plain open() would give. See docs/io.md "Writing files".
#include <cstddef>
#include <string>
#include <string_view>

namespace metaprobe {

/// A file being written atomically. The temporary `.<name>.tmp-<pid>-<n>.<host>` is created beside the
/// target (same filesystem); commit() renames it over the target; destruction without commit() removes it.
class AtomicFile {
 public:
  /// Checks the target (a directory or a read-only file is an IoError; the target is never replaced
  /// silently), removes stale temporaries of dead processes for this target, then creates the temporary.
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Appends `size` bytes; throws IoError with the OS reason (the temporary is removed on destruction).
  void write(const void* data, size_t size);
  /// fsyncs, gives the existing target's mode (or 0666 & ~umask for a new file), renames over the target and
  /// fsyncs the directory; throws IoError with the OS reason.
  void commit();
  /// The target path.
  const std::string& path() const { return path_; }
  /// The temporary's path (for tests).
  const std::string& temporary_path() const { return tmp_; }

 private:
  std::string path_;
  std::string dir_;
  std::string tmp_;
  int fd_ = -1;
  bool keep_mode_ = false;
  unsigned mode_ = 0;
  bool committed_ = false;
};

/// Writes `data` to `path` atomically with AtomicFile.
void write_file_atomic(const std::string& path, std::string_view data);

/// Removes `.<name>.tmp-<pid>-*.<host>` files beside `path` left by dead processes of this host; returns how
/// many were removed. Called by AtomicFile before each write; failures to remove are ignored.
size_t remove_stale_temporaries(const std::string& path);

}  // namespace metaprobe
