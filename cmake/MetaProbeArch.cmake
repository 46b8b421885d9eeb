# Resolves METAPROBE_ARCH_FLAGS into METAPROBE_KERNEL_FLAGS, the ISA flags given to numeric kernels.
# 'auto' enables AVX2+FMA+F16C only when the machine that builds also runs them: the package is built from
# source on the machine that uses it (pip install), so this is the same trade-off as -march=native,
# restricted to the kernels that profit.
include(CheckCXXSourceRuns)
set(METAPROBE_KERNEL_FLAGS "")
if(METAPROBE_ARCH_FLAGS STREQUAL "auto")
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64" AND NOT CMAKE_CROSSCOMPILING)
    set(CMAKE_REQUIRED_FLAGS "-mavx2 -mfma -mf16c")
    check_cxx_source_runs("
      #include <immintrin.h>
      int main() {
        if (!__builtin_cpu_supports(\"avx2\") || !__builtin_cpu_supports(\"fma\") ||
            !__builtin_cpu_supports(\"f16c\")) return 1;
        __m256 a = _mm256_cvtph_ps(_mm_set1_epi16(0x3c00));
        a = _mm256_fmadd_ps(a, a, a);
        float out[8]; _mm256_storeu_ps(out, a);
        return out[0] == 2.0f ? 0 : 1;
      }" METAPROBE_HOST_HAS_AVX2_FMA_F16C)
    unset(CMAKE_REQUIRED_FLAGS)
    if(METAPROBE_HOST_HAS_AVX2_FMA_F16C)
      set(METAPROBE_KERNEL_FLAGS -mavx2 -mfma -mf16c)
    endif()
  endif()
elseif(NOT METAPROBE_ARCH_FLAGS STREQUAL "none")
  separate_arguments(METAPROBE_KERNEL_FLAGS UNIX_COMMAND "${METAPROBE_ARCH_FLAGS}")
endif()
message(STATUS "metaprobe kernel ISA flags: '${METAPROBE_KERNEL_FLAGS}'")
