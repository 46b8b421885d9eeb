// The run directory of a resumable run: its manifest (what a resumed run must match) and whole-file JSON IO.
#include <metaprobe/meta/run.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>

#include <metaprobe/atomic_file.hpp>
#include <metaprobe/error.hpp>
#include <metaprobe/probes/suite.hpp>

#include "internal.hpp"

namespace metaprobe::meta::detail {
namespace {

namespace fs = std::filesystem;

// FNV-1a 64, hex: cheap and stable across platforms.
struct Fnv {
  uint64_t h = 1469598103934665603ULL;
  void add(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ULL;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
  }
};

// A file's identity without reading it: size and modification time (a rewritten checkpoint changes both).
std::string file_stamp(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return p.filename().string() + ":missing";
  return p.filename().string() + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

std::string checkpoint_fingerprint(const Stage& s) {
  if (!s.checkpoint_path.empty()) {
    const fs::path p(s.checkpoint_path);
    std::error_code ec;
    if (!fs::is_directory(p, ec)) return "file " + file_stamp(p);
    std::vector<std::string> stamps;
    for (const auto& e : fs::directory_iterator(p, ec))
      if (e.is_regular_file(ec)) stamps.push_back(file_stamp(e.path()));
    std::sort(stamps.begin(), stamps.end());
    Fnv f;
    for (const auto& x : stamps) f.add(x);
    return "directory " + std::to_string(stamps.size()) + " files " + f.hex();
  }
  if (s.checkpoint) {  // an in-memory state dict: its names, types, shapes and bytes
    Fnv f;
    for (const auto& name : s.checkpoint->names()) {
      const auto& info = s.checkpoint->info(name);
      f.add(name);
      f.add(info.dtype);
      f.add(info.shape.data(), info.shape.size() * sizeof(int64_t));
      const at::Tensor t = s.checkpoint->tensor(name).contiguous();
      f.add(t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size());
    }
    return "state dict " + f.hex();
  }
  return "none";
}

std::string responses_fingerprint(const Stage& s) {
  if (!s.responses) return "none";
  Fnv f;
  for (const auto& r : *s.responses) {
    f.add(r.item_id);
    f.add(&r.sample, sizeof r.sample);
    f.add(r.text);
    f.add(r.finish_reason);
    if (r.tokens) f.add(r.tokens->data(), r.tokens->size() * sizeof(int64_t));
  }
  return std::to_string(s.responses->size()) + " answers " + f.hex();
}

}  // namespace

nlohmann::json run_manifest(const std::vector<probes::Item>& items, const RunOptions& options,
                            const std::vector<Stage>& stages) {
  nlohmann::json st = nlohmann::json::array();
  for (const auto& s : stages)
    st.push_back({{"name", s.name}, {"arm", s.arm}, {"step", s.step}, {"checkpoint", checkpoint_fingerprint(s)},
                  {"responses", responses_fingerprint(s)},
                  {"reference_cache", s.reference_cache.empty() ? "none" : file_stamp(s.reference_cache)}});
  return {{"schema", "metaprobe.run_directory"}, {"schema_version", 1}, {"items", items.size()},
          {"suite_hash", probes::suite_hash(items)}, {"options", options_to_json(options)}, {"stages", st}};
}

void check_manifest(const nlohmann::json& saved, const nlohmann::json& now, const std::string& dir) {
  const std::string where = "resume: the run in '" + dir + "' ";
  if (!saved.is_object() || saved.value("schema", "") != "metaprobe.run_directory")
    throw FormatError(where + "has a run.json that is not a metaprobe run manifest");
  if (saved.at("suite_hash") != now.at("suite_hash"))
    throw InvalidArgument(where + "was started on another probe suite (hash " + saved.at("suite_hash").dump() + ", " +
                          saved.at("items").dump() + " items; now " + now.at("suite_hash").dump() + ", " +
                          now.at("items").dump() + " items), expected the same suite");
  const auto& a = saved.at("options");
  const auto& b = now.at("options");
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!a.contains(it.key()) || a.at(it.key()) != it.value())
      throw InvalidArgument(where + "was started with options." + it.key() + " = " +
                            (a.contains(it.key()) ? a.at(it.key()).dump() : std::string("(absent)")) + ", now " +
                            it.value().dump() + ", expected the same options");
  auto names = [](const nlohmann::json& stages) {
    std::string s;
    for (const auto& x : stages) s += (s.empty() ? "" : ", ") + x.at("name").get<std::string>();
    return "[" + s + "]";
  };
  if (saved.at("stages").size() != now.at("stages").size())
    throw InvalidArgument(where + "has the stages " + names(saved.at("stages")) + ", now " + names(now.at("stages")) +
                          ", expected the same stages");
  for (size_t i = 0; i < now.at("stages").size(); ++i) {
    const auto& x = saved.at("stages")[i];
    const auto& y = now.at("stages")[i];
    for (const char* key : {"name", "arm", "step", "checkpoint", "responses", "reference_cache"})
      if (x.value(key, nlohmann::json("none")) != y.at(key))
        throw InvalidArgument(where + "has stage " + std::to_string(i) + " ('" + x.at("name").get<std::string>() +
                              "') with " + key + " " + x.at(key).dump() + ", now " + y.at(key).dump() +
                              ", expected the same stages (start a new directory to probe changed stages)");
  }
}

nlohmann::json read_json_file(const std::string& path, const std::string& what) {
  const std::string prefix = what.empty() ? "" : what + ": ";
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError(prefix + "cannot open '" + path + "' for reading: " + std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError(prefix + "'" + path + "' is not JSON: " + e.what());
  }
}

void write_json_file(const std::string& path, const nlohmann::json& j) { write_file_atomic(path, j.dump() + "\n"); }

}  // namespace metaprobe::meta::detail
