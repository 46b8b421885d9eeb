// libFuzzer target: the safetensors header parser and validator on arbitrary file images.
// Invariants checked on every accepted input (a violation aborts, which libFuzzer reports):
// tensors are contiguous from 0, each holds exactly numel x dtype bits / 8 bytes, and the buffer is consumed.
#include <cstdint>
#include <cstdlib>

#include <metaprobe/io/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace metaprobe::io;
  try {
    const Header h = parse_header(data, size);
    uint64_t at = 0;
    for (const auto& e : h.tensors) {
      if (e.begin != at || e.end < e.begin || e.end - e.begin != e.info.nbytes) std::abort();
      at = e.end;
    }
    if (8 + h.header_size + at != size) std::abort();
  } catch (const SafetensorsError&) {
    // Rejection is the expected outcome for most inputs; anything else escaping is a bug.
  }
  return 0;
}
