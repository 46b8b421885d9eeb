// Links the installed metaprobe through find_package(MetaProbe) and prints its version.
#include <iostream>

#include <metaprobe/metaprobe.hpp>

int main() {
  std::cout << "metaprobe " << metaprobe::kVersion << "\n";
  return 0;
}
