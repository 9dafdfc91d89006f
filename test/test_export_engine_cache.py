"""TensorRT engine cache: key fields, atomic storage, and rebuild (never use) on any mismatch or corruption.

TensorRT is not installed here: the deserializer is a stand-in that "deserializes" blobs starting with a
magic prefix and fails (returns None or raises) on anything else, like ``Runtime.deserialize_cuda_engine``.
"""
import dataclasses
import json
import logging

import pytest

from syncvp_core.export.engine_cache import DeviceInfo, EngineCache, EngineKey, make_key

GOOD = b"ENGINE:"


class FakeEngine:
    def __init__(self, blob):
        self.blob = blob


def deserialize(blob: bytes):
    return FakeEngine(blob) if blob.startswith(GOOD) else None


def raising_deserialize(blob: bytes):
    if not blob.startswith(GOOD):
        raise RuntimeError("Serialization assertion failed: magic tag mismatch")
    return FakeEngine(blob)


SHAPES = {"frames": ((1, 3, 2, 16, 16),) * 3}


@pytest.fixture
def onnx_file(tmp_path):
    p = tmp_path / "encoder_rgb.onnx"
    p.write_bytes(b"fake onnx graph v1")
    return p


@pytest.fixture
def key(onnx_file):
    return make_key(onnx_file, "10.3.0", DeviceInfo("NVIDIA H100 80GB HBM3", "9.0"), "fp16", SHAPES)


class Builder:
    def __init__(self, payload=b"v1"):
        self.calls = 0
        self.payload = payload

    def __call__(self):
        self.calls += 1
        return GOOD + self.payload + bytes([self.calls])


def test_key_covers_every_field(onnx_file, key, tmp_path):
    variants = {
        "onnx_sha256": make_key(_other_onnx(tmp_path), "10.3.0", DeviceInfo("NVIDIA H100 80GB HBM3", "9.0"),
                                "fp16", SHAPES),
        "tensorrt_version": dataclasses.replace(key, tensorrt_version="10.4.0"),
        "gpu_name": dataclasses.replace(key, gpu_name="NVIDIA L4"),
        "compute_capability": dataclasses.replace(key, compute_capability="8.9"),
        "precision": dataclasses.replace(key, precision="bf16"),
        "shapes": make_key(onnx_file, "10.3.0", DeviceInfo("NVIDIA H100 80GB HBM3", "9.0"), "fp16",
                           {"frames": ((1, 3, 2, 16, 16), (2, 3, 2, 16, 16), (4, 3, 2, 16, 16))}),
    }
    digests = {key.digest()}
    for field, other in variants.items():
        assert other != key and other.digest() != key.digest(), field
        assert [d.split(":")[0] for d in other.differences(key)] == [field]
        digests.add(other.digest())
    assert len(digests) == len(variants) + 1
    # Same inputs -> same key (the digest is deterministic and JSON round-trips).
    assert make_key(onnx_file, "10.3.0", DeviceInfo("NVIDIA H100 80GB HBM3", "9.0"), "fp16", SHAPES) == key
    assert EngineKey.from_dict(json.loads(json.dumps(key.to_dict()))) == key


def _other_onnx(tmp_path):
    p = tmp_path / "other.onnx"
    p.write_bytes(b"fake onnx graph v2")
    return p


def test_unknown_precision_is_refused(key):
    with pytest.raises(ValueError, match="precision"):
        dataclasses.replace(key, precision="int4")


def test_build_once_then_reuse(tmp_path, key):
    cache = EngineCache(tmp_path / "engines", deserialize)
    build = Builder()
    e1 = cache.get_or_build("encoder_rgb", key, build)
    e2 = EngineCache(tmp_path / "engines", deserialize).get_or_build("encoder_rgb", key, build)
    assert build.calls == 1 and e1.blob == e2.blob
    engine = tmp_path / "engines" / "encoder_rgb.fp16.engine"
    side = json.loads(EngineCache.key_path(engine).read_text())
    assert side["key"] == key.to_dict() and side["digest"] == key.digest()
    assert sorted(p.name for p in engine.parent.iterdir()) == ["encoder_rgb.fp16.engine",
                                                               "encoder_rgb.fp16.engine.key.json"]  # no temp files


@pytest.mark.parametrize("field,value", [("tensorrt_version", "10.9.0"), ("gpu_name", "Orin"),
                                         ("compute_capability", "8.7"), ("onnx_sha256", "0" * 64)])
def test_key_mismatch_rebuilds_with_a_log_line(tmp_path, key, field, value, caplog):
    cache = EngineCache(tmp_path, deserialize)
    build = Builder()
    cache.get_or_build("g", key, build)
    new_key = dataclasses.replace(key, **{field: value})
    with caplog.at_level(logging.WARNING):
        engine = cache.get_or_build("g", new_key, build)
    assert build.calls == 2 and engine.blob.endswith(bytes([2]))
    assert "does not match" in caplog.text and field in caplog.text and "rebuilding" in caplog.text
    # The rebuilt engine now carries the new key.
    assert EngineKey.from_dict(json.loads(EngineCache.key_path(cache.engine_path("g", "fp16")).read_text())["key"]) \
        == new_key


@pytest.mark.parametrize("deser", [deserialize, raising_deserialize], ids=["returns-None", "raises"])
def test_engine_that_fails_to_deserialize_is_rebuilt_never_used(tmp_path, key, deser, caplog):
    cache = EngineCache(tmp_path, deser)
    build = Builder()
    cache.get_or_build("g", key, build)
    # Replace the engine with garbage AND forge a matching sidecar hash, so only deserialization can catch it.
    path = cache.engine_path("g", "fp16")
    garbage = b"\x00garbage engine"
    cache.store("g", key, garbage)
    assert path.read_bytes() == garbage
    with caplog.at_level(logging.WARNING):
        engine = cache.get_or_build("g", key, build)
    assert build.calls == 2 and engine.blob.startswith(GOOD)
    assert "failed to deserialize" in caplog.text
    assert path.read_bytes().startswith(GOOD)


def test_truncated_engine_is_caught_by_its_sha256(tmp_path, key, caplog):
    cache = EngineCache(tmp_path, deserialize)
    build = Builder(payload=b"x" * 1000)
    cache.get_or_build("g", key, build)
    path = cache.engine_path("g", "fp16")
    path.write_bytes(path.read_bytes()[:500])  # still "deserializable" by the fake: only the hash catches it
    with caplog.at_level(logging.WARNING):
        cache.get_or_build("g", key, build)
    assert build.calls == 2 and "sha256" in caplog.text


@pytest.mark.parametrize("damage", ["missing", "garbage", "wrong-schema"])
def test_missing_or_unreadable_sidecar_rebuilds(tmp_path, key, damage, caplog):
    cache = EngineCache(tmp_path, deserialize)
    build = Builder()
    cache.get_or_build("g", key, build)
    kp = EngineCache.key_path(cache.engine_path("g", "fp16"))
    if damage == "missing":
        kp.unlink()
    elif damage == "garbage":
        kp.write_text("{not json")
    else:
        kp.write_text(json.dumps({"key": {"onnx_sha256": "x"}}))
    with caplog.at_level(logging.WARNING):
        cache.get_or_build("g", key, build)
    assert build.calls == 2 and "sidecar" in caplog.text


def test_failed_build_leaves_the_cache_untouched(tmp_path, key):
    cache = EngineCache(tmp_path / "engines", deserialize)

    def broken():
        raise RuntimeError("builder out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        cache.get_or_build("g", key, broken)
    assert not (tmp_path / "engines").exists() or not list((tmp_path / "engines").iterdir())


def test_precisions_are_cached_side_by_side(tmp_path, key):
    cache = EngineCache(tmp_path, deserialize)
    build = Builder()
    cache.get_or_build("g", key, build)
    cache.get_or_build("g", dataclasses.replace(key, precision="fp32"), build)
    cache.get_or_build("g", key, build)
    assert build.calls == 2
