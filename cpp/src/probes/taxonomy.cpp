#include <metaprobe/probes/taxonomy.hpp>

namespace metaprobe::probes {

std::string to_string(const Cell& cell) {
  return std::string(to_string(cell.skill)) + "/" + std::string(to_string(cell.domain));
}

}  // namespace metaprobe::probes
