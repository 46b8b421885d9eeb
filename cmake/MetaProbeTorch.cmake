# Imports the libtorch of a pip-installed torch 2.x wheel as the target metaprobe::torch.
#
# Note [Why not find_package(Torch)]: the torch wheel PyPI serves on Linux is the CUDA build, and its
# TorchConfig.cmake stops with a fatal error unless a CUDA toolkit (nvcc) is installed, although nothing here
# compiles CUDA. metaprobe only calls ATen's dispatcher, so it links libtorch_cpu and libc10: in a Python process
# `import torch` has already loaded libtorch_cuda, whose kernels the dispatcher then reaches for CUDA tensors.
# The C++ executables (CLI, tests, consumers) run on the CPU.
#
# Inputs (cache variables):
#   METAPROBE_TORCH_ROOT  the torch package directory (holds include/ and lib/); default: asked of
#                         Python_EXECUTABLE (`import torch`).
#   METAPROBE_TORCH_CXX11_ABI  the wheel's _GLIBCXX_USE_CXX11_ABI (0/1); default: asked of the same Python.
# The installed MetaProbeConfig.cmake records both, so a consumer links the very libtorch metaprobe was built
# against.
if(TARGET metaprobe::torch)
  return()
endif()

if(NOT METAPROBE_TORCH_ROOT OR NOT DEFINED METAPROBE_TORCH_CXX11_ABI)
  if(NOT Python_EXECUTABLE)
    find_program(Python_EXECUTABLE NAMES python3 python)
  endif()
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c
      "import os, torch; print(os.path.dirname(torch.__file__)); print(int(torch._C._GLIBCXX_USE_CXX11_ABI)); print(torch.__version__)"
    OUTPUT_VARIABLE _mp_torch_out ERROR_VARIABLE _mp_torch_err RESULT_VARIABLE _mp_torch_rc
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _mp_torch_rc EQUAL 0)
    message(FATAL_ERROR "metaprobe: '${Python_EXECUTABLE} -c \"import torch\"' failed (${_mp_torch_err}); "
      "set Python_EXECUTABLE to the interpreter whose torch to build against, or METAPROBE_TORCH_ROOT and "
      "METAPROBE_TORCH_CXX11_ABI")
  endif()
  string(REPLACE "\n" ";" _mp_torch_out "${_mp_torch_out}")
  list(GET _mp_torch_out 0 _mp_root)
  list(GET _mp_torch_out 1 _mp_abi)
  list(GET _mp_torch_out 2 _mp_version)
  set(METAPROBE_TORCH_ROOT "${_mp_root}" CACHE PATH "torch package directory (include/, lib/)")
  set(METAPROBE_TORCH_CXX11_ABI "${_mp_abi}" CACHE STRING "the torch build's _GLIBCXX_USE_CXX11_ABI")
  set(METAPROBE_TORCH_VERSION "${_mp_version}" CACHE STRING "the torch version built against")
endif()

foreach(_mp_lib c10 torch_cpu)
  find_library(METAPROBE_TORCH_${_mp_lib}_LIBRARY ${_mp_lib} PATHS "${METAPROBE_TORCH_ROOT}/lib" NO_DEFAULT_PATH)
  if(NOT METAPROBE_TORCH_${_mp_lib}_LIBRARY)
    message(FATAL_ERROR "metaprobe: lib${_mp_lib}.so not found under ${METAPROBE_TORCH_ROOT}/lib "
      "(METAPROBE_TORCH_ROOT must be a torch package directory)")
  endif()
endforeach()
if(NOT EXISTS "${METAPROBE_TORCH_ROOT}/include/ATen/ATen.h")
  message(FATAL_ERROR "metaprobe: ${METAPROBE_TORCH_ROOT}/include/ATen/ATen.h not found")
endif()

add_library(metaprobe::torch INTERFACE IMPORTED)
set_target_properties(metaprobe::torch PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${METAPROBE_TORCH_ROOT}/include;${METAPROBE_TORCH_ROOT}/include/torch/csrc/api/include"
  INTERFACE_LINK_LIBRARIES "${METAPROBE_TORCH_torch_cpu_LIBRARY};${METAPROBE_TORCH_c10_LIBRARY}"
  INTERFACE_COMPILE_DEFINITIONS "_GLIBCXX_USE_CXX11_ABI=${METAPROBE_TORCH_CXX11_ABI}")
# Note [C++ standard]: metaprobe's own code is C++17, but torch's headers require C++20 since torch 2.12
# (ATen.h stops with "#error C++20 or later compatible compiler is required"). Every target that includes them
# then compiles as C++20; with an older torch it stays C++17.
file(STRINGS "${METAPROBE_TORCH_ROOT}/include/ATen/ATen.h" _mp_needs_cxx20 REGEX "C\\+\\+20 or later")
if(_mp_needs_cxx20)
  set_property(TARGET metaprobe::torch PROPERTY INTERFACE_COMPILE_FEATURES cxx_std_20)
  set(METAPROBE_TORCH_CXX_STANDARD 20)
else()
  set(METAPROBE_TORCH_CXX_STANDARD 17)
endif()
# Note [OpenMP]: the wheels' ATen runs its intra-op pool on OpenMP, and at::parallel_for is a header template
# around `#pragma omp parallel`, parallel only in files compiled with -fopenmp. The kernels that fan out rows
# (cpp/src/common/parallel.hpp) get METAPROBE_OPENMP_FLAGS, and every target links the OpenMP runtime that
# libtorch_cpu itself loads (the wheel bundles libgomp.so.1 in torch/lib; one runtime per process, so our
# parallel regions reuse torch's worker threads). With any other runtime the flags stay empty and the kernels
# fall back to a per-call std::thread fan-out.
set(METAPROBE_OPENMP_FLAGS "")
set(METAPROBE_OPENMP_LIBRARY "")
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  file(GLOB _mp_gomp "${METAPROBE_TORCH_ROOT}/lib/libgomp*.so*")
  if(_mp_gomp)
    list(GET _mp_gomp 0 METAPROBE_OPENMP_LIBRARY)
  else()
    find_program(_mp_ldd ldd)
    if(_mp_ldd)
      execute_process(COMMAND "${_mp_ldd}" "${METAPROBE_TORCH_torch_cpu_LIBRARY}" OUTPUT_VARIABLE _mp_ldd_out
                      ERROR_QUIET)
      string(REGEX MATCH "libgomp[^ ]* => ([^ ]+)" _mp_m "${_mp_ldd_out}")
      if(CMAKE_MATCH_1)
        set(METAPROBE_OPENMP_LIBRARY "${CMAKE_MATCH_1}")
      endif()
    endif()
  endif()
  if(METAPROBE_OPENMP_LIBRARY)
    set(METAPROBE_OPENMP_FLAGS -fopenmp)
    set_property(TARGET metaprobe::torch APPEND PROPERTY INTERFACE_LINK_LIBRARIES "${METAPROBE_OPENMP_LIBRARY}")
  endif()
endif()
# Executables find libtorch_cpu/libc10 (and, through the wheel's own RUNPATH, its libgomp) without LD_LIBRARY_PATH.
set(METAPROBE_TORCH_LIBRARY_DIR "${METAPROBE_TORCH_ROOT}/lib")
if(NOT METAPROBE_TORCH_FOUND_QUIETLY)
  message(STATUS "metaprobe: torch ${METAPROBE_TORCH_VERSION} at ${METAPROBE_TORCH_ROOT} (CXX11 ABI ${METAPROBE_TORCH_CXX11_ABI}, C++${METAPROBE_TORCH_CXX_STANDARD}, OpenMP runtime '${METAPROBE_OPENMP_LIBRARY}')")
  set(METAPROBE_TORCH_FOUND_QUIETLY ON)
endif()
