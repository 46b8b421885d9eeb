# Resolves METAPROBE_ARCH_FLAGS into METAPROBE_KERNEL_FLAGS, the ISA flags given to numeric kernels.
# 'auto' enables AVX2+FMA only when the machine that builds also runs them: the package is built from
# source on the machine that uses it (pip install), so this is the same trade-off as -march=native,
# restricted to the kernels that profit.
include(CheckCXXSourceRuns)
set(METAPROBE_KERNEL_FLAGS "")
if(METAPROBE_ARCH_FLAGS STREQUAL "auto")
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64" AND NOT CMAKE_CROSSCOMPILING)
    set(CMAKE_REQUIRED_FLAGS "-mavx2 -mfma")
    check_cxx_source_runs("
      #include <immintrin.h>
      int main() {
        if (!__builtin_cpu_supports(\"avx2\") || !__builtin_cpu_supports(\"fma\")) return 1;
        __m256 a = _mm256_set1_ps(1.0f);
        a = _mm256_fmadd_ps(a, a, a);
        float out[8]; _mm256_storeu_ps(out, a);
        return out[0] == 2.0f ? 0 : 1;
      }" METAPROBE_HOST_HAS_AVX2_FMA)
    unset(CMAKE_REQUIRED_FLAGS)
    if(METAPROBE_HOST_HAS_AVX2_FMA)
      set(METAPROBE_KERNEL_FLAGS -mavx2 -mfma)
    endif()
  endif()
elseif(NOT METAPROBE_ARCH_FLAGS STREQUAL "none")
  separate_arguments(METAPROBE_KERNEL_FLAGS UNIX_COMMAND "${METAPROBE_ARCH_FLAGS}")
endif()
message(STATUS "metaprobe kernel ISA flags: '${METAPROBE_KERNEL_FLAGS}'")
