// Faults around files: a file shrinking under an open reader, the atomic writer's modes, read-only targets
// and leftovers, and errors that must name the file and the OS reason.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <metaprobe/atomic_file.hpp>
#include <metaprobe/io/checkpoint.hpp>

#include "io_test_util.hpp"

using namespace metaprobe::io;
using io_test::TempDir;

namespace {

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::vector<std::string> leftovers(const TempDir& dir) {
  std::vector<std::string> out;
  for (const auto& e : io_test::fs::directory_iterator(dir.path)) {
    if (e.path().filename().string().find(".tmp") != std::string::npos) out.push_back(e.path().string());
  }
  return out;
}

struct Umask {
  mode_t old;
  explicit Umask(mode_t m) : old(::umask(m)) {}
  ~Umask() { ::umask(old); }
};

}  // namespace

TEST_CASE("a file truncated after open is an IoError naming it, never a SIGBUS", "[io][faults]") {
  TempDir dir;
  const std::string path = dir.file("x.safetensors");
  save_safetensors({{"a", at::randn({16})}, {"w", at::randn({256, 256})}}, path);
  for (const bool zero_copy : {false, true}) {
    INFO("zero_copy " << zero_copy);
    const auto f = SafetensorsFile::open(path, LoadOptions{false, zero_copy});
    const auto ck = Checkpoint::open(path, LoadOptions{false, zero_copy});
    REQUIRE(::truncate(path.c_str(), 4096) == 0);
    for (const TensorSource* src : {static_cast<const TensorSource*>(&f), static_cast<const TensorSource*>(&ck)}) {
      REQUIRE_THROWS_AS(src->tensor("w"), metaprobe::IoError);
      REQUIRE_THROWS_WITH(src->tensor("w"), Catch::Contains("tensor 'w'") && Catch::Contains(path) &&
                                                Catch::Contains("truncated") && Catch::Contains("now 4096 bytes"));
    }
    save_safetensors({{"a", at::randn({16})}, {"w", at::randn({256, 256})}}, path);  // restore for the next pass
  }
  SECTION("the copying view of a zero-copy checkpoint reads with pread") {
    const auto ck = Checkpoint::open(path, LoadOptions{false, true});
    const auto safe = ck.copying();
    CHECK_FALSE(safe.shards()[0].options().zero_copy);
    CHECK(safe.tensor("w").equal(ck.tensor("w")));
    CHECK(safe.tensor("w").data_ptr() != safe.tensor("w").data_ptr());  // owned copies
    REQUIRE(::truncate(path.c_str(), 100) == 0);
    REQUIRE_THROWS_AS(safe.tensor("a"), metaprobe::IoError);
  }
}

TEST_CASE("a file shrinking mid-read is survived by the copying reader (child process)", "[io][faults]") {
  TempDir dir;
  const std::string path = dir.file("big.safetensors");
  save_safetensors({{"w", at::randn({1024, 2048})}}, path);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child reads repeatedly while the parent truncates: every outcome must be a value or an IoError.
    // (No ATen kernels here: OpenMP is not fork-safe; pread into a fresh tensor needs none.)
    const auto f = SafetensorsFile::open(path);
    for (int i = 0; i < 20000; ++i) {
      try {
        const at::Tensor t = f.tensor("w");
        if (t.data_ptr<float>()[t.numel() - 1] != t.data_ptr<float>()[t.numel() - 1]) ::_exit(4);
      } catch (const metaprobe::IoError&) {
        ::_exit(0);
      }
    }
    ::_exit(3);  // never saw the truncation
  }
  ::usleep(20000);
  REQUIRE(::truncate(path.c_str(), 4096) == 0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  INFO("status " << status);
  REQUIRE(WIFEXITED(status));  // not killed by SIGBUS
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("the atomic writer gives the mode open() would and keeps an existing target's", "[io][faults][atomic]") {
  TempDir dir;
  const std::string path = dir.file("t.txt");
  SECTION("new files follow the umask: 022 -> 0644, 002 -> 0664") {
    {
      Umask u(022);
      metaprobe::write_file_atomic(path, "a");
    }
    CHECK(mode_of(path) == 0644);
    ::unlink(path.c_str());
    {
      Umask u(002);
      metaprobe::write_file_atomic(path, "b");
      save_safetensors({{"x", at::ones({1})}}, dir.file("s.safetensors"));
    }
    CHECK(mode_of(path) == 0664);
    CHECK(mode_of(dir.file("s.safetensors")) == 0664);
  }
  SECTION("an existing file keeps its mode") {
    metaprobe::write_file_atomic(path, "a");
    REQUIRE(::chmod(path.c_str(), 0640) == 0);
    {
      Umask u(077);
      metaprobe::write_file_atomic(path, "bb");
    }
    CHECK(mode_of(path) == 0640);
    CHECK(io_test::read_file(path).size() == 2);
  }
  SECTION("a read-only target is an IoError and is left untouched (even for root)") {
    metaprobe::write_file_atomic(path, "keep");
    REQUIRE(::chmod(path.c_str(), 0444) == 0);
    REQUIRE_THROWS_AS(metaprobe::write_file_atomic(path, "new"), metaprobe::IoError);
    REQUIRE_THROWS_WITH(metaprobe::write_file_atomic(path, "new"),
                        Catch::Contains(path) && Catch::Contains("read-only") && Catch::Contains("444"));
    REQUIRE_THROWS_AS(save_safetensors({{"x", at::ones({1})}}, path), metaprobe::IoError);
    CHECK(io_test::read_file(path) == io_test::bytes("keep"));
    CHECK(mode_of(path) == 0444);
    CHECK(leftovers(dir).empty());
  }
  SECTION("a directory target or a missing directory names the path and the OS reason") {
    REQUIRE_THROWS_WITH(metaprobe::write_file_atomic(dir.path.string(), "x"), Catch::Contains("is a directory"));
    const std::string nowhere = dir.file("no/such/dir/f.txt");
    REQUIRE_THROWS_AS(metaprobe::write_file_atomic(nowhere, "x"), metaprobe::IoError);
    REQUIRE_THROWS_WITH(metaprobe::write_file_atomic(nowhere, "x"),
                        Catch::Contains("cannot open '" + nowhere + "' for writing: No such file or directory"));
  }
  SECTION("an abandoned write leaves nothing") {
    {
      metaprobe::AtomicFile f(path);
      f.write("partial", 7);
      CHECK(io_test::fs::exists(f.temporary_path()));
      const std::string name = io_test::fs::path(f.temporary_path()).filename().string();
      CHECK(name.rfind(".t.txt.tmp-" + std::to_string(::getpid()) + "-", 0) == 0);
    }
    CHECK_FALSE(io_test::fs::exists(path));
    CHECK(leftovers(dir).empty());
  }
}

TEST_CASE("kill -9 mid-write leaves a temporary that the next write to the target removes", "[io][faults][atomic]") {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  save_safetensors({{"old", at::zeros({4})}}, path);
  const at::Tensor a = at::ones({1 << 16}), b = at::ones({4});  // made before fork: OpenMP is not fork-safe
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(ready[0]);
    SaveOptions hook;
    hook.after_tensor = [&](const std::string&) {
      (void)!::write(ready[1], "x", 1);
      ::pause();  // killed here, mid-write
    };
    save_safetensors({{"a", a}, {"b", b}}, path, {}, hook);
    ::_exit(1);
  }
  ::close(ready[1]);
  char c;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  ::close(ready[0]);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  const auto left = leftovers(dir);
  REQUIRE(left.size() == 1);
  CHECK(left[0].find(".m.safetensors.tmp-" + std::to_string(child) + "-") != std::string::npos);
  CHECK(SafetensorsFile::open(path).names() == std::vector<std::string>{"old"});  // the target is untouched
  // A temporary of a live process (ours) is left alone; the dead child's is removed.
  metaprobe::AtomicFile mine(path);
  CHECK(leftovers(dir).size() == 1);
  CHECK(leftovers(dir)[0] == mine.temporary_path());
}

TEST_CASE("checkpoint directories report the real reason they cannot be read", "[io][faults][checkpoint]") {
  TempDir dir;
  SECTION("a non-UTF-8 index is an InvalidIndex naming the file and the byte") {
    const std::string index = dir.file("model.safetensors.index.json");
    io_test::write_file(index, io_test::bytes("{\"weight_map\": {\"a\xff\": \"x.safetensors\"}}"));
    REQUIRE_THROWS_AS(Checkpoint::open(dir.path.string()), SafetensorsError);
    REQUIRE_THROWS_WITH(Checkpoint::open(dir.path.string()),
                        Catch::Contains(index) && Catch::Contains("byte 18 (0xff) is not valid UTF-8"));
  }
  SECTION("a self-looping model.safetensors symlink is the loop, not 'holds neither'") {
    REQUIRE(::symlink("model.safetensors", dir.file("model.safetensors").c_str()) == 0);
    REQUIRE_THROWS_AS(Checkpoint::open(dir.path.string()), metaprobe::IoError);
    REQUIRE_THROWS_WITH(Checkpoint::open(dir.path.string()), Catch::Contains("Too many levels of symbolic links"));
  }
  SECTION("a self-looping checkpoint path is the loop") {
    const std::string loop = dir.file("loop");
    REQUIRE(::symlink("loop", loop.c_str()) == 0);
    REQUIRE_THROWS_WITH(Checkpoint::open(loop), Catch::Contains(loop) &&
                                                    Catch::Contains("Too many levels of symbolic links"));
  }
}
