#pragma once
// metaprobe's exception hierarchy. Library code never prints: it returns values or throws one of these,
// with a message that names the argument, the offending value and what was expected.
// Python sees InvalidArgument/FormatError as ValueError subclasses, IoError as OSError and the rest as
// RuntimeError subclasses, each with the same message (bindings/errors.cpp).
#include <stdexcept>
#include <string>

namespace metaprobe {

/// Base of every error metaprobe throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A caller passed a bad value: wrong shape, dtype, range, option or name.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

/// A file or directory could not be opened, read, written or renamed.
class IoError : public Error {
 public:
  using Error::Error;
};

/// The bytes of a file (or a JSON/JSONL document) break the rules of their format.
class FormatError : public Error {
 public:
  using Error::Error;
};

/// A valid request that this build cannot serve (e.g. a dtype libtorch lacks).
class Unsupported : public Error {
 public:
  using Error::Error;
};

}  // namespace metaprobe
