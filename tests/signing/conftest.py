"""Shared fixtures: one real key per key type (generated once), modules, stores."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pystap import modfile
from pystap.signing import SignerStore, generate_signing_key
from pystap.signing.algorithms import KEY_TYPES


def make_module(**overrides) -> bytes:
    fields = dict(
        name="stap_sign_test",
        translator="pystap 0.1.0",
        privilege="stapusr",
        release="6.18.0",
        arch="x86_64",
        script_digest="ab" * 32,
        probes=(modfile.ProbeEntry(id=0, family="begin", point="begin", handler="probe_0"),),
        code="def probe_0(ctx):\n    pass\n",
    )
    fields.update(overrides)
    return modfile.dump(modfile.Module(**fields))


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """A signing key of every supported type, each in its own directory."""
    base = tmp_path_factory.mktemp("keys")
    return {kt: generate_signing_key(base / kt, key_type=kt) for kt in KEY_TYPES}


@pytest.fixture(scope="session")
def other_keys(tmp_path_factory):
    """A second, different key of the fast types (for 'wrong signer' cases)."""
    base = tmp_path_factory.mktemp("other-keys")
    return {kt: generate_signing_key(base / kt, key_type=kt) for kt in ("ml-dsa-65", "ecdsa-p256", "ed25519")}


@pytest.fixture(params=KEY_TYPES)
def key(request, keys):
    return keys[request.param]


@pytest.fixture
def module_bytes():
    return make_module()


@pytest.fixture
def now():
    return datetime.now(UTC)


def store_of(*signing_keys, **kwargs) -> SignerStore:
    return SignerStore.from_certificates([k.certificate for k in signing_keys], **kwargs)
