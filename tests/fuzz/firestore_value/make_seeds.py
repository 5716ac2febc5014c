#!/usr/bin/env python3
"""Writes the committed seeds in corpus/: serialized google.firestore.v1.Value and Document
messages, encoded by hand (protobuf wire format) so no generated code is needed.
Run from this directory: python3 make_seeds.py"""
import os
import struct

MAX_DEPTH = 62  # dataflow::cache::kCacheValueJsonLimits.max_depth


def varint(n):
    n &= (1 << 64) - 1  # negative int64 as two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def f_varint(field, n):
    return key(field, 0) + varint(n)


def f_double(field, x):
    return key(field, 1) + struct.pack("<d", x)


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return key(field, 2) + varint(len(b)) + b


# google.firestore.v1.Value
def null():
    return f_varint(11, 0)


def boolean(b):
    return f_varint(1, int(b))


def integer(n):
    return f_varint(2, n)


def double(x):
    return f_double(3, x)


def timestamp(seconds, nanos):
    return f_bytes(10, f_varint(1, seconds) + f_varint(2, nanos))


def string(s):
    return f_bytes(17, s)


def bytes_value(b):
    return f_bytes(18, b)


def reference(s):
    return f_bytes(5, s)


def geo(lat, lng):
    return f_bytes(8, f_double(1, lat) + f_double(2, lng))


def array(*values):
    return f_bytes(9, b"".join(f_bytes(1, v) for v in values))


def entries(fields):
    return b"".join(f_bytes(1, f_bytes(1, k) + f_bytes(2, v)) for k, v in fields.items())


def map_value(fields):
    return f_bytes(6, entries(fields))


def field_reference(s):
    return f_bytes(19, s)


def function(name, *args):
    return f_bytes(20, f_bytes(1, name) + b"".join(f_bytes(2, a) for a in args))


# google.firestore.v1.Document: name = 1, fields = 2, create_time = 3, update_time = 4
def document(fields, name="projects/p/databases/(default)/documents/devices/d1"):
    ts = f_varint(1, 1700000000) + f_varint(2, 5)
    return f_bytes(1, name) + b"".join(
        f_bytes(2, f_bytes(1, k) + f_bytes(2, v)) for k, v in fields.items()) + f_bytes(
            3, ts) + f_bytes(4, ts)


def nested_maps(levels, leaf=None):
    """`levels` maps inside one another around `leaf` (JSON depth `levels` + the leaf's)."""
    v = integer(1) if leaf is None else leaf
    for _ in range(levels):
        v = map_value({"m": v})
    return v


def nested_mixed(levels):
    """Maps and (single-element) arrays alternating, JSON depth `levels`."""
    v = string("leaf")
    for i in range(levels):
        v = array(v) if i % 2 == 0 else map_value({"a": v})
    return v


every_kind = {
    "null": null(),
    "unset": b"",
    "bool": boolean(True),
    "int": integer(-9223372036854775808),
    "int_max": integer(9223372036854775807),
    "double": double(-0.0),
    "nan": double(float("nan")),
    "inf": double(float("inf")),
    "timestamp": timestamp(1700000000, 123456789),
    "timestamp_min": timestamp(-62135596800, 0),
    "timestamp_bad": timestamp(1 << 62, -5),
    "string": string("h\u00e9llo \u2603"),
    "bytes": bytes_value(b"\x00\xff\x10binary"),
    "reference": reference("projects/p/databases/(default)/documents/c/d"),
    "geo": geo(52.37, 4.89),
    "array": array(integer(1), string("two"), map_value({"three": double(3.0)})),
    "empty_array": array(),
    "map": map_value({"a": boolean(False), "b": array(null())}),
    "empty_map": map_value({}),
}

seeds = {
    "flat_document": document({
        "name": string("sensor-7"),
        "location": string("hall 2"),
        "floor": double(2.5),
        "count": integer(42),
        "active": boolean(True),
    }),
    "every_kind_document": document(every_kind),
    "every_kind_map_value": map_value(every_kind),
    "nested_document": document({
        "calibration": map_value({"x": double(0.1), "y": array(double(1), double(2))}),
        "tags": array(string("a"), map_value({"b": array(string("c"))})),
    }),
    "array_in_array_value": array(array(integer(1))),  # decodes; refused on the way back
    "field_reference_value": map_value({"f": field_reference("a.b")}),  # no JSON form
    "function_value": array(integer(1), function("add", integer(1))),  # no JSON form
    "scalar_integer_value": integer(7),
    "scalar_timestamp_value": timestamp(0, 0),
    "scalar_geo_value": geo(-90.0, 180.0),
    # Values: the value itself is level 1. Documents: the fields object is level 1.
    "deep_maps_value_at_limit": nested_maps(MAX_DEPTH),
    "deep_maps_value_over_limit": nested_maps(MAX_DEPTH + 1),
    "deep_mixed_value_at_limit": nested_mixed(MAX_DEPTH),
    "deep_mixed_value_over_limit": nested_mixed(MAX_DEPTH + 1),
    "deep_maps_document_at_limit": document({"m": nested_maps(MAX_DEPTH - 1)}),
    "deep_maps_document_over_limit": document({"m": nested_maps(MAX_DEPTH)}),
    # A geo point is a level too: 61 maps around it inside the fields object make 63.
    "deep_geo_document_over_limit": document({"m": nested_maps(MAX_DEPTH - 1, geo(1.0, 2.0))}),
}

os.makedirs("corpus", exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join("corpus", name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds")
