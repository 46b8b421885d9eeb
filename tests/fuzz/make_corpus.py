#!/usr/bin/env python3
"""Regenerates tests/fuzz/corpus/: every invalid-file vector of the safetensors crate's own tests (safetensors/src/tensor.rs, `mod tests`) plus valid files (stdlib only).

    python3 tests/fuzz/make_corpus.py
"""
from __future__ import annotations

import struct
from pathlib import Path


def raw(header: str | bytes, data: bytes = b"") -> bytes:
    h = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(h)) + h + data


def padded(header: str, data: bytes = b"") -> bytes:
    return raw(header + " " * ((8 - len(header) % 8) % 8), data)


I32 = '{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}'
CORPUS = {
    # the reference crate's invalid-file vectors (tensor.rs tests)
    "invalid_header_too_small_empty": b"",
    "invalid_header_length_no_body": b"<\0\0\0\0\0\0\0",
    "invalid_header_too_large": bytes([0x3C, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF]),
    "invalid_header_utf8": raw(b"\xff"),
    "invalid_header_deserialization_brace": raw("{"),
    "invalid_incomplete_buffer_extra": raw(I32, b"\0" * 16 + b"extra"),
    "invalid_incomplete_buffer_short": raw(I32, b"\0" * 14),
    "invalid_tensor_info": raw(I32.replace("[0,16]", "[0,4]"), b"\0" * 4),
    "invalid_overflow_numel": raw(I32.replace("[2,2]", "[2,18446744073709551614]"), b"\0" * 16),
    "invalid_overflow_bits": raw(I32.replace("[2,2]", "[2,9223372036854775807]"), b"\0" * 16),
    "invalid_offset_shared_region": raw("{" + ",".join(
        f'"weight_{i}":{{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}' for i in range(10)) + "}", b"\0" * 16),
    "invalid_misaligned_slice_f4": raw('{"x":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}', b"\0\0"),
    "invalid_tensor_view_f4": raw('{"x":{"dtype":"F4","shape":[4],"data_offsets":[0,4]}}', b"\0" * 4),
    # attacks/: overlapping offsets, a hole, a huge length prefix
    "invalid_overlap": raw('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},'
                           '"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}', b"\0" * 6),
    "invalid_hole": raw('{"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}', b"\0" * 4),
    "invalid_length_max": b"\xff" * 8,
    # our additions
    "invalid_duplicate_name": raw('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                                  '"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"\0\0"),
    "invalid_metadata_number": raw('{"__metadata__":{"epoch":3}}'),
    "invalid_nul_byte": raw(b"{}\0x"),
    "invalid_deep_nesting": raw('{"a":' + "[" * 200 + "]" * 200 + "}"),
    # valid files
    "valid_empty": padded("{}"),
    "valid_leading_space": raw("    {}"),
    "valid_zero_size": raw('{"x":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]}}'),
    "valid_scalar": raw('{"x":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}', b"\1\0\0\0"),
    "valid_mixed": padded('{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                          '"a":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]},'
                          '"m":{"dtype":"BOOL","shape":[3],"data_offsets":[12,15]},'
                          '"f":{"dtype":"F4","shape":[2],"data_offsets":[15,16]}}', b"\0" * 16),
}


def main() -> None:
    out = Path(__file__).resolve().parent / "corpus"
    out.mkdir(exist_ok=True)
    for name, data in CORPUS.items():
        (out / name).write_bytes(data)


if __name__ == "__main__":
    main()
