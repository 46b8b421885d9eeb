// The translation unit that owns the precompiled ATen header (METAPROBE_PCH); the modules reuse it.
