"""The module file: canonical, deterministic, and strictly validated on load."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystap import modfile


def make_module(**overrides):
    fields = dict(
        name="stap_test",
        translator="pystap 0.1.0",
        privilege="stapusr",
        release="6.18.0",
        arch="x86_64",
        script_digest="0" * 64,
        probes=(modfile.ProbeEntry(id=0, family="begin", point="begin", handler="probe_0",
                                   params={"sequence": 0}),),
        code="def probe_0(ctx):\n    pass\n",
        globals=("count",),
    )
    fields.update(overrides)
    return modfile.Module(**fields)


def test_round_trip_and_determinism():
    data = modfile.dump(make_module())
    assert data == modfile.dump(make_module())
    assert data.endswith(b"\n")
    loaded = modfile.load(data)
    assert loaded == make_module()
    assert modfile.dump(loaded) == data


def test_digest_is_sha256_hex():
    assert modfile.digest(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _obj():
    return json.loads(modfile.dump(make_module()))


def _bytes(obj):
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o.update(version=2), "unsupported module format version 2"),
        (lambda o: o.update(format="elf"), "not a pystap module"),
        (lambda o: o.update(privilege="root"), "invalid privilege 'root'"),
        (lambda o: o.update(extra=1), "unknown key 'extra'"),
        (lambda o: o.pop("code"), "missing 'code'"),
        (lambda o: o.update(code=5), "'code' in module must be str"),
        (lambda o: o["probes"][0].update(id=True), "'id' in probe #0 must be int"),
        (lambda o: o["probes"][0]["params"].update(x={"a": 1}), "must be a scalar or a list"),
        (lambda o: o["probes"].append(dict(o["probes"][0])), "duplicate probe id 0"),
        (lambda o: o["target"].update(kernel="x"), "unknown key 'kernel' in target"),
    ],
)
def test_invalid_modules_are_refused_with_a_reason(mutate, message):
    obj = _obj()
    mutate(obj)
    with pytest.raises(modfile.ModuleFormatError, match=message):
        modfile.load(_bytes(obj))


def test_duplicate_keys_and_nan_are_refused():
    with pytest.raises(modfile.ModuleFormatError, match="duplicate key"):
        modfile.load(b'{"format": "pystap-module", "format": "pystap-module"}')
    with pytest.raises(modfile.ModuleFormatError, match="invalid number"):
        modfile.load(b'{"format": NaN}')


def test_truncated_and_oversized_modules():
    data = modfile.dump(make_module())
    for cut in (0, 1, len(data) // 2, len(data) - 3):
        with pytest.raises(modfile.ModuleFormatError):
            modfile.load(data[:cut])
    with pytest.raises(modfile.ModuleFormatError, match="too large"):
        modfile.load(b" " * (modfile.MAX_MODULE_BYTES + 1))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_raise_module_format_error(data):
    try:
        modfile.load(data)
    except modfile.ModuleFormatError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_modules_only_raise_module_format_error(data):
    raw = bytearray(modfile.dump(make_module()))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        modfile.load(bytes(raw))
    except modfile.ModuleFormatError:
        pass
