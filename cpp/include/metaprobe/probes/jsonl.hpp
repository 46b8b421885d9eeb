#pragma once
// Item <-> JSON and JSONL files (schema in docs/probes.md). Unknown fields survive a read/write round trip.
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <metaprobe/probes/item.hpp>

namespace metaprobe::probes {

/// The item as a JSON object with the schema's keys (optional keys only where they apply) plus `extra`.
nlohmann::json to_json(const Item& item);
/// Parses one item; `where` (e.g. "probes.jsonl:12") prefixes every FormatError, which names the field.
Item item_from_json(const nlohmann::json& j, std::string_view where);
/// One JSONL line (compact JSON, sorted keys, no newline).
std::string to_jsonl_line(const Item& item);
/// Parses JSONL text; blank lines are allowed, any other bad line throws FormatError "source:line: ...".
/// Duplicate ids are an error too.
std::vector<Item> parse_jsonl(std::string_view text, std::string_view source = "<jsonl>");
/// Reads a JSONL file of items; IoError if it cannot be read, FormatError for a bad line.
std::vector<Item> read_jsonl(const std::string& path);
/// Writes items as JSONL atomically (temporary file beside the target, then rename); IoError on failure.
void write_jsonl(const std::vector<Item>& items, const std::string& path);

}  // namespace metaprobe::probes
