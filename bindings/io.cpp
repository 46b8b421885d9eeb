// Python bindings of the io module: metaprobe._core.io. Errors: SafetensorsError (a FormatError with a
// `kind` attribute) and NotFoundError (an IoError that is also a FileNotFoundError, errno ENOENT).
#include <cerrno>

#include <metaprobe/atomic_file.hpp>
#include <metaprobe/io/checkpoint.hpp>
#include <metaprobe/io/safetensors.hpp>
#include <metaprobe/io/tensor_source.hpp>

#include "binding.hpp"

namespace metaprobe::bindings {
namespace {

PyObject* make_class(py::module_& m, const char* name, py::tuple bases, const char* doc) {
  using namespace pybind11::literals;
  py::object type = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(&PyType_Type));
  py::object cls = type(name, bases, py::dict("__module__"_a = "metaprobe.io", "__doc__"_a = doc));
  m.attr(name) = cls;
  return cls.release().ptr();  // leaked on purpose: exception classes outlive module teardown
}

py::dict to_dict(const std::map<std::string, std::string>& m) {
  py::dict d;
  for (const auto& [k, v] : m) d[py::str(k)] = py::str(v);
  return d;
}

}  // namespace

void bind_io(py::module_& m) {
  auto io = m.def_submodule("io", "Safetensors files and checkpoints (use metaprobe.io rather than this module)");
  using namespace metaprobe::io;

  static PyObject* safetensors_error = make_class(
      io, "SafetensorsError", py::make_tuple(m.attr("FormatError")),
      "A malformed safetensors file or checkpoint index; `kind` names the rule it broke (e.g. 'InvalidOffset').");
  static PyObject* not_found = make_class(
      io, "NotFoundError", py::make_tuple(m.attr("IoError"), py::handle(PyExc_FileNotFoundError)),
      "A file or directory that does not exist (errno ENOENT; `filename` holds the path).");
  // Registered after bind_errors, so tried first; anything else falls through to the generic translator.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const SafetensorsError& e) {
      py::object exc = py::reinterpret_borrow<py::object>(safetensors_error)(e.what());
      exc.attr("kind") = py::str(std::string(to_string(e.kind())));
      PyErr_SetObject(safetensors_error, exc.ptr());
    } catch (const PathNotFound& e) {
      // The class mixes RuntimeError into OSError, so OSError's argument parsing does not run: set the fields.
      py::object exc = py::reinterpret_borrow<py::object>(not_found)(e.what());
      exc.attr("errno") = ENOENT;
      exc.attr("strerror") = py::str(e.what());
      exc.attr("filename") = py::str(e.path());
      PyErr_SetObject(not_found, exc.ptr());
    }
  });

  py::class_<TensorInfo>(io, "TensorInfo", "Metadata of one stored tensor, known without reading its data.")
      .def_readonly("name", &TensorInfo::name)
      .def_readonly("dtype", &TensorInfo::dtype, "safetensors dtype name: 'F32', 'BF16', 'F8_E4M3', ...")
      .def_property_readonly("shape", [](const TensorInfo& i) { return py::tuple(py::cast(i.shape)); })
      .def_readonly("nbytes", &TensorInfo::nbytes, "bytes of data")
      .def_property_readonly("numel", &TensorInfo::numel)
      .def("__repr__", [](const TensorInfo& i) {
        std::string s = "TensorInfo(name='" + i.name + "', dtype='" + i.dtype + "', shape=(";
        for (size_t k = 0; k < i.shape.size(); ++k) s += (k ? ", " : "") + std::to_string(i.shape[k]);
        if (i.shape.size() == 1) s += ",";
        return s + "), nbytes=" + std::to_string(i.nbytes) + ")";
      });

  py::class_<TensorSource>(io, "TensorSource",
                           "Named tensors yielded one at a time: a file, a checkpoint or an in-memory state dict.")
      .def("names", &TensorSource::names, "Names in storage (or index, or insertion) order.")
      .def("info", &TensorSource::info, py::arg("name"), py::return_value_policy::copy)
      .def("tensor", &TensorSource::tensor, py::arg("name"), py::call_guard<py::gil_scoped_release>(),
           "The tensor, zero-copy where possible.")
      .def("contains", &TensorSource::contains, py::arg("name"))
      .def("__contains__", &TensorSource::contains)
      .def("__len__", &TensorSource::size);

  py::class_<MemorySource, TensorSource>(io, "MemorySource", "A state dict as a TensorSource (no copies).")
      .def(py::init<std::vector<std::pair<std::string, at::Tensor>>>(), py::arg("tensors"));

  py::class_<SafetensorsFile, TensorSource>(io, "SafetensorsFile",
                                            "A validated safetensors file (pread copies or zero-copy views).")
      .def_static(
          "open",
          [](const std::string& path, bool decode_fp8, bool zero_copy) {
            return SafetensorsFile::open(path, {decode_fp8, zero_copy});
          },
          py::arg("path"), py::arg("decode_fp8") = false, py::arg("zero_copy") = false,
          py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("metadata", [](const SafetensorsFile& f) { return to_dict(f.metadata()); })
      .def_property_readonly("file_size", &SafetensorsFile::file_size)
      .def_property_readonly("path", &SafetensorsFile::path)
      .def_property_readonly("data_start", &SafetensorsFile::data_start)
      .def_property_readonly("zero_copy", [](const SafetensorsFile& f) { return f.options().zero_copy; })
      .def("copying", &SafetensorsFile::copying, "The same file serving tensors as pread copies.")
      .def("data_offsets", &SafetensorsFile::data_offsets, py::arg("name"));

  py::class_<Checkpoint, TensorSource>(io, "Checkpoint",
                                       "A sharded or single-file checkpoint, validated at open.")
      .def_static(
          "open",
          [](const std::string& path, bool decode_fp8, bool zero_copy) {
            return Checkpoint::open(path, {decode_fp8, zero_copy});
          },
          py::arg("path"), py::arg("decode_fp8") = false, py::arg("zero_copy") = false,
          py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("metadata", [](const Checkpoint& c) { return to_dict(c.metadata()); })
      .def_property_readonly("files", &Checkpoint::files)
      .def_property_readonly("total_file_bytes", &Checkpoint::total_file_bytes)
      .def("copying", &Checkpoint::copying, "The same shards serving tensors as pread copies.")
      .def("shard_of", &Checkpoint::shard_of, py::arg("name"));

  // The Python layer's files go through the same writer as the C++ ones (one set of guarantees, one name
  // pattern for temporaries); python/metaprobe/_atomic.py is the thin wrapper.
  io.def(
      "write_file_atomic",
      [](const std::string& path, const py::bytes& data) {
        char* buffer = nullptr;
        Py_ssize_t size = 0;
        if (PyBytes_AsStringAndSize(data.ptr(), &buffer, &size) != 0) throw py::error_already_set();
        py::gil_scoped_release release;  // `data` stays alive (and immutable) in the caller's frame
        write_file_atomic(path, std::string_view(buffer, static_cast<size_t>(size)));
      },
      py::arg("path"), py::arg("data"),
      "Writes bytes to path whole or not at all (metaprobe/atomic_file.hpp; docs/io.md \"Writing files\").");
  io.def("remove_stale_temporaries", &remove_stale_temporaries, py::arg("path"),
         py::call_guard<py::gil_scoped_release>(),
         "Removes temporaries beside path left by dead processes of this host; returns the count.");
  io.def(
      "save_safetensors",
      [](const std::vector<std::pair<std::string, at::Tensor>>& tensors, const std::string& path,
         const std::map<std::string, std::string>& metadata) { save_safetensors(tensors, path, metadata); },
      py::arg("tensors"), py::arg("path"), py::arg("metadata") = std::map<std::string, std::string>{},
      py::call_guard<py::gil_scoped_release>(), "Writes tensors atomically in the reference layout.");
  io.def(
      "serialize_safetensors",
      [](const std::vector<std::pair<std::string, at::Tensor>>& tensors,
         const std::map<std::string, std::string>& metadata) {
        std::vector<uint8_t> out;
        {
          py::gil_scoped_release release;
          out = serialize_safetensors(tensors, metadata);
        }
        return py::bytes(reinterpret_cast<const char*>(out.data()), out.size());
      },
      py::arg("tensors"), py::arg("metadata") = std::map<std::string, std::string>{},
      "The bytes save_safetensors would write.");
  io.def(
      "validate_bytes",
      [](const py::bytes& data) {
        const std::string_view view(data);
        Header h;
        {
          py::gil_scoped_release release;
          h = parse_header(reinterpret_cast<const uint8_t*>(view.data()), view.size());
        }
        py::list tensors;
        for (const auto& e : h.tensors) tensors.append(py::make_tuple(e.info, e.begin, e.end));
        return py::make_tuple(tensors, to_dict(h.metadata));
      },
      py::arg("data"), "Validates a whole file image; returns ([(TensorInfo, begin, end)], metadata).");
}

}  // namespace metaprobe::bindings
