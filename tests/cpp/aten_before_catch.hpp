#pragma once
// Force-included into every C++ test (tests/cpp/CMakeLists.txt). c10's logging header defines a CHECK macro
// that would silently replace Catch2's CHECK when ATen is included after <catch2/catch.hpp>: include it
// first and drop its definition, so Catch's CHECK is the one every test gets.
#include <c10/util/Logging.h>
#undef CHECK
