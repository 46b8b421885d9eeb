// Checkpoint directories: a sharded index, a single model.safetensors, or one file.
#include <cerrno>
#include <fstream>
#include <set>
#include <sstream>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include <metaprobe/io/checkpoint.hpp>

#include "mapping.hpp"
#include "utf8.hpp"

namespace metaprobe::io {
namespace {

using Kind = SafetensorsErrorKind;
constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

// Whether `p` exists; any failure other than "no such file" (a permission denied on the directory, a
// symlink loop, an I/O error) is that error, not an absence.
bool exists(const std::string& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) == 0) return true;
  const int err = errno;
  if (err == ENOENT) return false;
  throw_os_error("cannot open", p, err);
}

std::string join(const std::string& dir, const std::string& name) {
  return !dir.empty() && dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string parent_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

[[noreturn]] void bad_index(const std::string& index, const std::string& what) {
  throw SafetensorsError(Kind::InvalidIndex, index + ": " + what);
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& path, LoadOptions options) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw_os_error("cannot open checkpoint", path, errno);
  Checkpoint c;
  c.shards_ = std::make_shared<std::vector<SafetensorsFile>>();
  std::string index_path;
  if (S_ISDIR(st.st_mode)) {
    if (exists(join(path, kIndexName))) {
      index_path = join(path, kIndexName);
    } else if (exists(join(path, kSingleName))) {
      c.files_.push_back(join(path, kSingleName));
    } else {
      throw PathNotFound(path, "checkpoint directory '" + path + "' holds neither " + kIndexName + " nor " +
                                   kSingleName);
    }
  } else if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
    index_path = path;
  } else {
    c.files_.push_back(path);
  }

  if (index_path.empty()) {
    c.shards_->push_back(SafetensorsFile::open(c.files_[0], options));
    const auto& f = c.shards_->front();
    c.names_ = f.names();
    for (const auto& n : c.names_) c.shard_index_.emplace(n, 0);
    c.metadata_ = f.metadata();
    return c;
  }

  // The index: ordered_json keeps weight_map in file order; duplicates are detected while parsing.
  std::ifstream in(index_path, std::ios::binary);
  if (!in) throw_os_error("cannot read index", index_path, errno);
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw_os_error("cannot read index", index_path, errno);
  const std::string text = ss.str();
  // JSON is UTF-8 (RFC 8259); checking first also keeps raw bytes out of the parser's error messages.
  const size_t bad_at = detail::utf8_invalid_at(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  if (bad_at != text.size()) {
    static const char* hex = "0123456789abcdef";
    const auto byte = static_cast<unsigned char>(text[bad_at]);
    bad_index(index_path, "byte " + std::to_string(bad_at) + " (0x" + std::string{hex[byte >> 4], hex[byte & 15]} +
                              ") is not valid UTF-8, expected a UTF-8 JSON text");
  }
  std::string duplicate;
  std::vector<std::set<std::string>> keys;
  nlohmann::ordered_json root;
  try {
    root = nlohmann::ordered_json::parse(
        text, [&](int depth, nlohmann::ordered_json::parse_event_t ev, nlohmann::ordered_json& parsed) {
          if (ev == nlohmann::ordered_json::parse_event_t::object_start) keys.emplace_back();
          if (ev == nlohmann::ordered_json::parse_event_t::object_end) keys.pop_back();
          if (ev == nlohmann::ordered_json::parse_event_t::key && keys.size() == 2 && duplicate.empty() &&
              !keys.back().insert(parsed.get<std::string>()).second) {
            duplicate = parsed.get<std::string>();
          }
          return true;
        });
  } catch (const nlohmann::json::exception& e) {
    bad_index(index_path, std::string("not valid JSON: ") + e.what());
  }
  if (!root.is_object()) bad_index(index_path, "expected a JSON object with a \"weight_map\"");
  const auto wm = root.find("weight_map");
  if (wm == root.end() || !wm->is_object()) {
    bad_index(index_path, "missing \"weight_map\" object of tensor name -> shard file");
  }
  if (!duplicate.empty()) {
    throw SafetensorsError(Kind::DuplicateTensorName,
                           index_path + ": tensor '" + duplicate + "' appears twice in weight_map");
  }
  if (const auto md = root.find("metadata"); md != root.end() && !md->is_null()) {
    if (!md->is_object()) bad_index(index_path, "\"metadata\" is not an object");
    for (auto it = md->begin(); it != md->end(); ++it) {
      c.metadata_[it.key()] = it->is_string() ? it->get<std::string>() : it->dump();
    }
  }
  const std::string dir = parent_of(index_path);
  std::map<std::string, size_t> file_index;
  std::vector<size_t> shard_of_name;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string()) {
      bad_index(index_path, "weight_map value of '" + it.key() + "' is " + it->dump() + ", expected a file name");
    }
    const std::string file = it->get<std::string>();
    // Shards live beside the index: an absolute path or a '..' would let an index reach any file.
    if (file.empty() || file[0] == '/' || file == ".." || file.rfind("../", 0) == 0 ||
        file.find("/../") != std::string::npos || (file.size() >= 3 && file.compare(file.size() - 3, 3, "/..") == 0)) {
      bad_index(index_path, "weight_map sends '" + it.key() + "' to '" + file +
                                "', expected a relative file name inside the checkpoint directory");
    }
    auto [pos, inserted] = file_index.emplace(file, c.files_.size());
    if (inserted) c.files_.push_back(join(dir, file));
    c.names_.push_back(it.key());
    c.shard_index_.emplace(it.key(), pos->second);
  }
  for (const auto& f : c.files_) {
    if (!exists(f)) {
      throw PathNotFound(f, "checkpoint shard '" + f + "' named by " + index_path + " does not exist");
    }
    c.shards_->push_back(SafetensorsFile::open(f, options));
  }
  // Every shard header is scanned: a tensor stored in two shards is ambiguous even if the index picks one.
  std::unordered_map<std::string, size_t> stored_in;
  for (size_t s = 0; s < c.shards_->size(); ++s) {
    for (const auto& n : (*c.shards_)[s].names()) {
      auto [pos, inserted] = stored_in.emplace(n, s);
      if (!inserted) {
        throw SafetensorsError(Kind::DuplicateTensorName, "tensor '" + n + "' is stored in both '" +
                                                              c.files_[pos->second] + "' and '" + c.files_[s] + "'");
      }
    }
  }
  for (const auto& n : c.names_) {
    const size_t s = c.shard_index_.at(n);
    if (!(*c.shards_)[s].contains(n)) {
      throw SafetensorsError(Kind::TensorNotFound, index_path + " maps tensor '" + n + "' to '" + c.files_[s] +
                                                       "', which does not hold it");
    }
  }
  return c;
}

std::vector<std::string> Checkpoint::names() const { return names_; }

size_t Checkpoint::shard_of(const std::string& name) const {
  const auto it = shard_index_.find(name);
  if (it == shard_index_.end()) {
    throw InvalidArgument("name: no tensor '" + name + "' in the checkpoint (" + std::to_string(names_.size()) +
                          " tensors in " + std::to_string(files_.size()) + " files)");
  }
  return it->second;
}

const TensorInfo& Checkpoint::info(const std::string& name) const { return (*shards_)[shard_of(name)].info(name); }

at::Tensor Checkpoint::tensor(const std::string& name) const { return (*shards_)[shard_of(name)].tensor(name); }

bool Checkpoint::contains(const std::string& name) const { return shard_index_.count(name) != 0; }

Checkpoint Checkpoint::copying() const {
  Checkpoint c = *this;
  auto shards = std::make_shared<std::vector<SafetensorsFile>>();
  shards->reserve(shards_->size());
  for (const auto& s : *shards_) shards->push_back(s.copying());
  c.shards_ = std::move(shards);
  return c;
}

uint64_t Checkpoint::total_file_bytes() const {
  uint64_t total = 0;
  for (const auto& s : *shards_) total += s.file_size();
  return total;
}

}  // namespace metaprobe::io
