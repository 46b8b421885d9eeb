#pragma once
// Umbrella header: includes every public module of metaprobe.
#include <metaprobe/error.hpp>
#include <metaprobe/version.hpp>
