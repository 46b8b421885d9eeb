// Maps metaprobe's C++ exceptions onto Python exception classes that also subclass the builtin one a
// Python user expects (ValueError, OSError, RuntimeError), keeping the message.
#include <metaprobe/error.hpp>

#include "binding.hpp"

namespace metaprobe::bindings {
namespace {

// The builtin comes first so its constructor (OSError's errno/strerror parsing) is the one Python uses.
// `builtin` may be null when the base (a RuntimeError) is already the builtin wanted.
// Leaked on purpose: exception classes must outlive every module teardown order.
PyObject* make_error_class(py::module_& m, const char* name, PyObject* builtin, py::handle base,
                           const char* doc) {
  using namespace pybind11::literals;
  py::object type = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(&PyType_Type));
  // Built as a list first: newer pybind11 gives make_tuple results distinct static types.
  py::list bases;
  if (builtin) bases.append(py::handle(builtin));
  bases.append(base);
  py::object cls = type(name, py::tuple(bases),
                        py::dict("__module__"_a = "metaprobe", "__doc__"_a = doc));
  m.attr(name) = cls;
  return cls.release().ptr();
}

}  // namespace

void bind_errors(py::module_& m) {
  static PyObject* base = nullptr;
  static PyObject* invalid = nullptr;
  static PyObject* io = nullptr;
  static PyObject* format = nullptr;
  static PyObject* unsupported = nullptr;
  auto& base_exc = py::register_exception<Error>(m, "MetaprobeError", PyExc_RuntimeError);
  base = base_exc.ptr();
  invalid = make_error_class(m, "InvalidArgumentError", PyExc_ValueError, base,
                             "A bad argument: wrong shape, dtype, range, option or name.");
  io = make_error_class(m, "IoError", PyExc_OSError, base,
                        "A file or directory could not be opened, read, written or renamed.");
  format = make_error_class(m, "FormatError", PyExc_ValueError, base,
                            "The bytes of a file or document break the rules of their format.");
  unsupported = make_error_class(m, "UnsupportedError", nullptr, base,
                                 "A valid request this build cannot serve.");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InvalidArgument& e) {
      PyErr_SetString(invalid, e.what());
    } catch (const IoError& e) {
      PyErr_SetString(io, e.what());
    } catch (const FormatError& e) {
      PyErr_SetString(format, e.what());
    } catch (const Unsupported& e) {
      PyErr_SetString(unsupported, e.what());
    }
  });
}

}  // namespace metaprobe::bindings
