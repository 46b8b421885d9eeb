// Open files and whole-file memory maps. MAP_PRIVATE with PROT_WRITE makes tensors aliasing the map safe to
// write to: a write copies the page for this process only (it never reaches the file and never faults), while
// untouched pages stay shared with the page cache. MAP_NORESERVE keeps strict overcommit from charging the
// whole file. A mapped page beyond the end of a file that shrank after mapping raises SIGBUS on access: that
// is why the copying read mode (pread) exists and why the mapped mode re-checks the size per tensor.
#include <cerrno>
#include <algorithm>
#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <metaprobe/io/safetensors.hpp>

#include "mapping.hpp"

namespace metaprobe::io {

void throw_os_error(const std::string& what, const std::string& path, int err) {
  const std::string message = what + " '" + path + "': " + std::strerror(err);
  if (err == ENOENT || err == ENOTDIR) throw PathNotFound(path, message);
  throw IoError(message);
}

void throw_shrunk(const std::string& path, const std::string& what, uint64_t begin, uint64_t end,
                  uint64_t size_at_open, uint64_t size_now) {
  throw IoError("cannot read " + what + " from '" + path + "': it needs file bytes [" + std::to_string(begin) +
                ", " + std::to_string(end) + ") but the file is now " + std::to_string(size_now) +
                " bytes (it was " + std::to_string(size_at_open) +
                " when opened): it was truncated or rewritten in place after it was opened");
}

std::shared_ptr<const FileHandle> FileHandle::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not hang; it is refused below like any non-regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw_os_error("cannot open", path, errno);
  std::shared_ptr<FileHandle> f(new FileHandle());
  f->fd_ = fd;
  f->path_ = path;
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_os_error("cannot stat", path, errno);
  if (S_ISDIR(st.st_mode)) throw IoError("cannot read '" + path + "': it is a directory, expected a safetensors file");
  if (!S_ISREG(st.st_mode)) {
    throw IoError("cannot read '" + path + "': not a regular file, expected a safetensors file");
  }
  f->size_ = static_cast<uint64_t>(st.st_size);
  return f;
}

FileHandle::~FileHandle() {
  if (fd_ >= 0) ::close(fd_);
}

uint64_t FileHandle::current_size() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw_os_error("cannot stat", path_, errno);
  return static_cast<uint64_t>(st.st_size);
}

void FileHandle::read_exact(void* dst, uint64_t n, uint64_t offset, const std::string& what) const {
  auto* p = static_cast<uint8_t*>(dst);
  uint64_t done = 0;
  while (done < n) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n - done, uint64_t{1} << 30));
    const ssize_t r = ::pread(fd_, p + done, chunk, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_os_error("cannot read " + what + " from", path_, errno);
    }
    if (r == 0) throw_shrunk(path_, what, offset, offset + n, size_, current_size());
    done += static_cast<uint64_t>(r);
  }
}

std::shared_ptr<const Mapping> Mapping::open(const FileHandle& file) {
  std::shared_ptr<Mapping> m(new Mapping());
  m->size_ = file.size();
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, file.fd(), 0);
    if (p == MAP_FAILED) throw_os_error("cannot memory-map", file.path(), errno);
    m->data_ = static_cast<uint8_t*>(p);
  }
  return m;
}

Mapping::~Mapping() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

}  // namespace metaprobe::io
