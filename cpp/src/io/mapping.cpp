// Whole-file memory maps. MAP_PRIVATE with PROT_WRITE makes tensors aliasing the map safe to write to: a
// write copies the page for this process only (it never reaches the file and never faults), while untouched
// pages stay shared with the page cache. MAP_NORESERVE keeps strict overcommit from charging the whole file.
#include <cerrno>
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

std::shared_ptr<const Mapping> Mapping::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not hang; it is refused below like any non-regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw_os_error("cannot open", path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw_os_error("cannot stat", path, err);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw IoError("cannot map '" + path + "': it is a directory, expected a safetensors file");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError("cannot map '" + path + "': not a regular file, expected a safetensors file");
  }
  std::shared_ptr<Mapping> m(new Mapping());
  m->size_ = static_cast<uint64_t>(st.st_size);
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw_os_error("cannot memory-map", path, err);
    }
    m->data_ = static_cast<uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  return m;
}

Mapping::~Mapping() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

}  // namespace metaprobe::io
