// The top-k reference cache as a safetensors file (docs/meta.md, "Top-k cache files").
#include <metaprobe/meta/cache.hpp>

#include <charconv>
#include <cmath>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <metaprobe/error.hpp>
#include <metaprobe/io/safetensors.hpp>

#include "common/format.hpp"

namespace metaprobe::meta {

namespace {
constexpr const char* kFormat = "metaprobe.topk_cache";
}

void save_topk_caches(const std::vector<SequenceCache>& caches, double temperature, const std::string& path) {
  if (!(temperature > 0) || !std::isfinite(temperature))
    throw InvalidArgument("save_topk_caches: temperature is " + metaprobe::detail::format_double(temperature) + ", expected > 0");
  std::vector<TopKCache> rows;
  std::vector<int64_t> offsets{0};
  nlohmann::json ids = nlohmann::json::array(), samples = nlohmann::json::array();
  for (const auto& c : caches) {
    if (!rows.empty() && c.rows.indices.size(1) != rows.front().indices.size(1))
      throw InvalidArgument("save_topk_caches: sequence '" + c.item_id + "' caches " +
                            std::to_string(c.rows.indices.size(1)) + " tokens per row, the first " +
                            std::to_string(rows.front().indices.size(1)) + ", expected one k");
    rows.push_back(c.rows);
    offsets.push_back(offsets.back() + c.rows.indices.size(0));
    ids.push_back(c.item_id);
    samples.push_back(c.sample);
  }
  const TopKCache all = concat(rows);
  io::save_safetensors({{"indices", all.indices.contiguous()},
                        {"logprobs", all.logprobs.contiguous()},
                        {"entropy", all.entropy.contiguous()},
                        {"offsets", at::tensor(offsets, at::kLong)}},
                       path,
                       {{"format", kFormat}, {"version", "1"}, {"temperature", metaprobe::detail::format_double(temperature)},
                        {"item_ids", ids.dump()}, {"samples", samples.dump()}});
}

std::vector<SequenceCache> load_topk_caches(const std::string& path, double* temperature) {
  const auto f = io::SafetensorsFile::open(path);
  const auto& md = f.metadata();
  auto meta = [&](const char* key) {
    const auto it = md.find(key);
    if (it == md.end()) throw FormatError("top-k cache '" + path + "': metadata has no '" + key + "'");
    return it->second;
  };
  if (meta("format") != kFormat || meta("version") != "1")
    throw FormatError("top-k cache '" + path + "': format is '" + meta("format") + "' version '" + meta("version") +
                      "', expected '" + kFormat + "' version '1'");
  double t = 0;
  const std::string ts = meta("temperature");
  if (std::from_chars(ts.data(), ts.data() + ts.size(), t).ec != std::errc() || !(t > 0))
    throw FormatError("top-k cache '" + path + "': temperature is '" + ts + "', expected a number > 0");
  if (temperature) *temperature = t;
  nlohmann::json ids, samples;
  try {
    ids = nlohmann::json::parse(meta("item_ids"));
    samples = nlohmann::json::parse(meta("samples"));
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError("top-k cache '" + path + "': item_ids or samples is not JSON: " + e.what());
  }
  for (const char* name : {"indices", "logprobs", "entropy", "offsets"})
    if (!f.contains(name)) throw FormatError("top-k cache '" + path + "': no tensor '" + name + "'");
  const at::Tensor offsets = f.tensor("offsets").to(at::kLong);
  const at::Tensor indices = f.tensor("indices"), logprobs = f.tensor("logprobs"), entropy = f.tensor("entropy");
  if (!ids.is_array() || !samples.is_array() || ids.size() != samples.size() || offsets.dim() != 1 ||
      offsets.size(0) != static_cast<int64_t>(ids.size()) + 1)
    throw FormatError("top-k cache '" + path + "': " + std::to_string(ids.size()) + " item ids, " +
                      std::to_string(samples.size()) + " samples and " + std::to_string(offsets.numel()) +
                      " offsets, expected S, S and S + 1");
  if (indices.dim() != 2 || logprobs.sizes() != indices.sizes() || entropy.dim() != 1 || entropy.size(0) != indices.size(0))
    throw FormatError("top-k cache '" + path + "': indices, logprobs [N, k] and entropy [N] do not fit together");
  auto o = offsets.accessor<int64_t, 1>();
  if (o[0] != 0 || o[offsets.size(0) - 1] != indices.size(0))
    throw FormatError("top-k cache '" + path + "': offsets run from " + std::to_string(o[0]) + " to " +
                      std::to_string(o[offsets.size(0) - 1]) + ", expected 0 to the " + std::to_string(indices.size(0)) + " rows");
  TopKCache all;
  try {
    all = topk_cache_from(indices, logprobs, entropy);
  } catch (const InvalidArgument& e) {
    throw FormatError("top-k cache '" + path + "': " + e.what());
  }
  std::vector<SequenceCache> out;
  for (size_t s = 0; s < ids.size(); ++s) {
    if (o[s + 1] < o[s]) throw FormatError("top-k cache '" + path + "': offsets decrease at sequence " + std::to_string(s));
    if (!ids[s].is_string() || !samples[s].is_number_integer())
      throw FormatError("top-k cache '" + path + "': sequence " + std::to_string(s) + " has item id " + ids[s].dump() +
                        " and sample " + samples[s].dump() + ", expected a string and an integer");
    out.push_back({ids[s].get<std::string>(), samples[s].get<int64_t>(), slice(all, o[s], o[s + 1])});
  }
  return out;
}

}  // namespace metaprobe::meta
