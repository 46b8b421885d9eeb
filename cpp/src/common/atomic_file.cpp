// The atomic file writer. The temporary is opened O_EXCL with mode 0666, so the umask applies exactly as it
// would for open(); an existing target's mode is copied onto it before the rename. The pid and host in the
// temporary's name let a later write to the same target remove what a killed process left behind, without
// touching a temporary that a live process (here, or on another host sharing the filesystem) is writing.
#include <metaprobe/atomic_file.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <algorithm>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <metaprobe/error.hpp>

namespace metaprobe {
namespace {

std::string os_reason(int err) { return std::strerror(err); }

std::string dirname_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string basename_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The short host name with '.' and '/' replaced, so it is one file-name component without dots.
std::string host_tag() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  std::string h(buf);
  const auto dot = h.find('.');
  if (dot != std::string::npos) h.resize(dot);
  for (char& c : h) {
    if (c == '/' || c == '.') c = '_';
  }
  return h.empty() ? "localhost" : h;
}

std::string temp_prefix(const std::string& path) { return "." + basename_of(path) + ".tmp-"; }

}  // namespace

size_t remove_stale_temporaries(const std::string& path) {
  const std::string dir = dirname_of(path);
  const std::string prefix = temp_prefix(path);
  const std::string suffix = "." + host_tag();
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  size_t removed = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    // <pid>-<unique> follows the prefix.
    size_t i = prefix.size();
    long long pid = 0;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9' && pid < (1LL << 31)) pid = pid * 10 + (name[i++] - '0');
    if (i == prefix.size() || i >= name.size() || name[i] != '-' || pid <= 0 || pid >= (1LL << 31)) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    if (::unlinkat(::dirfd(d), name.c_str(), 0) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

AtomicFile::AtomicFile(const std::string& path) : path_(path), dir_(dirname_of(path)) {
  if (path.empty()) throw InvalidArgument("path: empty, expected a file path");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) throw IoError("cannot write '" + path + "': it is a directory, expected a file path");
    // Mode bits, not access(): root may write anything, but a file made read-only must still not be replaced.
    if ((st.st_mode & 0222) == 0 || ::access(path.c_str(), W_OK) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof(mode), "%o", static_cast<unsigned>(st.st_mode & 07777));
      throw IoError("cannot write '" + path + "': the file is read-only (mode " + mode + ": " + os_reason(EACCES) +
                    "), expected a writable file; it was left untouched");
    }
    keep_mode_ = true;
    mode_ = static_cast<unsigned>(st.st_mode & 07777);
  } else if (errno != ENOENT) {
    throw IoError("cannot write '" + path + "': " + os_reason(errno));
  }
  remove_stale_temporaries(path);
  static std::atomic<uint64_t> counter{0};
  const std::string host = host_tag();
  for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
    const auto stamp = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    tmp_ = dir_ + "/" + temp_prefix(path) + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "x" +
           std::to_string(stamp % 1000000007ULL) + "." + host;
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST) {
      const int err = errno;
      throw IoError("cannot open '" + path + "' for writing: " + os_reason(err) + " (creating a temporary in '" +
                    dir_ + "')");
    }
  }
  if (fd_ < 0) throw IoError("cannot open '" + path + "' for writing: no unique temporary name in '" + dir_ + "'");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  if (fd_ < 0) throw IoError("cannot write '" + path_ + "': the file was already committed or closed");
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const size_t chunk = std::min<size_t>(size, size_t{1} << 30);
    const ssize_t w = ::write(fd_, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw IoError("cannot write '" + path_ + "': " + os_reason(errno) + " (writing the temporary '" + tmp_ + "')");
    }
    p += w;
    size -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw IoError("cannot write '" + path_ + "': the file was already committed or closed");
  if (keep_mode_ && ::fchmod(fd_, mode_) != 0) {
    throw IoError("cannot write '" + path_ + "': cannot set the mode: " + os_reason(errno));
  }
  if (::fsync(fd_) != 0) throw IoError("cannot write '" + path_ + "': fsync failed: " + os_reason(errno));
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) throw IoError("cannot write '" + path_ + "': close failed: " + os_reason(errno));
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    throw IoError("cannot write '" + path_ + "': cannot rename the temporary over it: " + os_reason(errno));
  }
  committed_ = true;
  // Persist the rename itself; best effort, the data is already durable.
  const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, std::string_view data) {
  AtomicFile f(path);
  f.write(data.data(), data.size());
  f.commit();
}

}  // namespace metaprobe
