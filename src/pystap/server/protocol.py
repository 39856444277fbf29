"""The compile server's wire protocol, version 1 (described in docs/admin/server.md).

Transport: TCP, then TLS 1.3; the server presents its TLS identity and the
client pins it by SHA-256 fingerprint.  One exchange per connection:

* client → server: a 4-byte big-endian *signed* length N, then N bytes (as
  SystemTap frames its request).  N = 0 is a *hello*: the server answers with
  its hello document (what ``--trust-servers`` and ``--list-servers`` need).
  Otherwise the N bytes are a zlib stream (RFC 1950) of the request document.
* server → client: the same framing around a zlib stream of the response (or
  hello) document; then the server closes.  (SystemTap sent a raw zip until
  close, which cannot tell a complete answer from a cut one.)

Documents are canonical JSON -- sorted keys, no insignificant whitespace,
ASCII only -- so a request has exactly one byte form and its digest in the
audit log identifies it.  Binary content (files, module, signature, outputs,
certificates) is base64.  Nothing a client sends is ever used as a path as
is: file names must match :data:`FILE_NAME`, which allows exactly one script
file ``script/NAME`` and flat tapset directories ``tapset/N/NAME``.

Everything here is a pure function of bytes, shared by both sides, using only
the standard library; every malformed input is a :class:`ProtocolError` whose
message can be sent back to the client.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pystap import modfile

VERSION = 1
REQUEST_FORMAT = "pystap-server-request"
RESPONSE_FORMAT = "pystap-server-response"
HELLO_FORMAT = "pystap-server-hello"

LENGTH = struct.Struct(">i")  # SystemTap's framing: 4 bytes, big-endian, signed

# SystemTap's limits were 5 000 bytes compressed and 50 000 uncompressed for a zip of raw
# files; base64 in JSON is a third larger, and tapset directories travel in the request, so
# the defaults here are larger (docs/admin/server.md).  Administrators can lower them.
DEFAULT_MAX_COMPRESSED = 64 * 1024
DEFAULT_MAX_REQUEST = 512 * 1024
DEFAULT_MAX_FILES = 256
MAX_ARGV = 1024  # options + script arguments
MAX_ARG_CHARS = 100_000  # below the kernel's 128 KiB limit for one exec argument
MAX_LOCALE = 16
MAX_RESPONSE = 64 * 1024 * 1024  # what a client accepts (a 16 MiB module in base64, outputs)

# One script file, and flat -I directories numbered in command-line order.  Components
# never start with '.', so '.', '..' and hidden names are impossible; no '/' inside a
# component, no NUL, nothing outside ASCII letters, digits and "_.+-".
_COMPONENT = r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,127}"
TAPSET_DIR = re.compile(r"tapset/(?:0|[1-9][0-9]{0,2})")
FILE_NAME = re.compile(rf"(?:script|{TAPSET_DIR.pattern})/{_COMPONENT}")
OPTION_NAME = re.compile(r"-[A-Za-z]|--[a-z][a-z0-9-]{0,40}")
RELEASE = re.compile(r"[A-Za-z0-9_.+-]{1,128}")  # SystemTap's -r pattern for clients
ARCH = re.compile(r"[A-Za-z0-9_-]{1,32}")
MODULE_FILE = re.compile(r"[A-Za-z0-9_]{1,64}\.stapmod")

MSG_NEGATIVE = "Invalid request size: negative value"
MSG_TOO_LARGE = "Error size of (compressed) request file is too large"


class ProtocolError(Exception):
    """Malformed or refused input; the message is meant for the peer (and the log)."""


def size_message(size: int, limit: int) -> str:
    """SystemTap's words for an uncompressed request outside the limits."""
    return (f"Uncompressed request size of {size} bytes is not within the expected range of 1 to "
            f"{limit} bytes.")


def shown(value: object, limit: int = 80) -> str:
    """A client-supplied value as it may appear in a message or a log line: escaped, short."""
    text = ascii(value)
    return text if len(text) <= limit else text[:limit] + "…"


# -- framing and encoding -----------------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    return LENGTH.pack(len(payload)) + payload


def frame_length(header: bytes, limit: int) -> int:
    """The length a peer announced, checked as SystemTap checks it (0 is allowed: hello)."""
    (size,) = LENGTH.unpack(header)
    if size < 0:
        raise ProtocolError(MSG_NEGATIVE)
    if size > limit:
        raise ProtocolError(MSG_TOO_LARGE)
    return size


def canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def pack(document: Mapping[str, Any]) -> bytes:
    """Canonical JSON, zlib-compressed: the body of one frame."""
    return zlib.compress(canonical(document), 6)


def inflate(data: bytes, limit: int, what: str = "request") -> bytes:
    """Decompress one zlib stream, keeping at most ``limit`` bytes in memory.

    The whole stream is measured (its size is bounded by the compressed limit
    times zlib's maximal ratio) so that the refusal can name the size, as
    SystemTap's does; anything but exactly one complete stream is refused.
    """
    inflater = zlib.decompressobj()
    kept = bytearray()
    total = 0
    pending = data
    try:
        while True:
            chunk = inflater.decompress(pending, 1 << 20)
            total += len(chunk)
            if len(kept) <= limit:
                kept += chunk[: limit + 1 - len(kept)]
            pending = inflater.unconsumed_tail
            if not pending and not chunk:
                break
    except zlib.error:
        raise ProtocolError(f"Invalid {what}: the body is not a zlib stream") from None
    if not inflater.eof:
        raise ProtocolError(f"Invalid {what}: the body is a truncated zlib stream")
    if inflater.unused_data:
        raise ProtocolError(f"Invalid {what}: data follows the zlib stream")
    if total < 1 or total > limit:
        if what != "request":
            raise ProtocolError(f"Invalid {what}: {total} bytes, more than the limit of {limit}")
        raise ProtocolError(size_message(total, limit))
    return bytes(kept)


def parse_document(data: bytes, what: str = "request") -> dict[str, Any]:
    """Strict, canonical JSON object: ASCII, no duplicate keys, no NaN, one byte form."""
    try:
        text = data.decode("ascii")
        document = modfile.strict_json(text)
    except modfile.StrictJsonError as exc:
        raise ProtocolError(f"Invalid {what}: {exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError(f"Invalid {what}: not ASCII JSON") from None
    if not isinstance(document, dict):
        raise ProtocolError(f"Invalid {what}: not a JSON object")
    if canonical(document) != data:
        raise ProtocolError(f"Invalid {what}: not canonical JSON (sorted keys, no spaces, ASCII)")
    return document


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(value: Any, what: str, limit: int) -> bytes:
    if not isinstance(value, str) or len(value) > (limit * 4) // 3 + 4:
        raise ProtocolError(f"Invalid {what}: not base64 or too large")
    try:
        data = binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ProtocolError(f"Invalid {what}: not base64") from None
    if len(data) > limit:
        raise ProtocolError(f"Invalid {what}: too large")
    return data


def _check_keys(document: Mapping[str, Any], keys: set[str], fmt: str, what: str) -> None:
    if document.get("format") != fmt:
        raise ProtocolError(f"Invalid {what}: not a {fmt} document")
    version = document.get("version")
    if type(version) is not int or version != VERSION:
        raise ProtocolError(f"Invalid {what}: unsupported protocol version {shown(version)} "
                            f"(this side speaks version {VERSION})")
    if set(document) != keys:
        missing, extra = sorted(keys - set(document)), sorted(set(document) - keys)
        raise ProtocolError(f"Invalid {what}: " + (f"missing {', '.join(missing)}" if missing
                                                   else f"unknown key {shown(extra[0])}"))


def _text(value: Any, what: str, limit: int = MAX_ARG_CHARS) -> str:
    """A string that may become one exec argument: no NUL, bounded."""
    if not isinstance(value, str) or "\x00" in value or len(value) > limit:
        raise ProtocolError(f"Invalid request: {what} must be a string without NUL of at most {limit} "
                            "characters")
    return value


# -- the request ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A validated request.

    ``options`` are (name, value) pairs as the client's command line had them
    (value None for flags); ``script`` names the script file in ``files`` (None
    with ``-e`` or a listing); ``files`` maps allowlisted names to contents.
    """

    release: str
    arch: str
    options: tuple[tuple[str, str | None], ...]
    script: str | None
    args: tuple[str, ...]
    files: dict[str, bytes]
    locale: dict[str, str]

    def document(self) -> dict[str, Any]:
        return {
            "format": REQUEST_FORMAT,
            "version": VERSION,
            "sysinfo": {"release": self.release, "arch": self.arch},
            "options": [[name, value] for name, value in self.options],
            "script": self.script,
            "args": list(self.args),
            "files": {name: b64(data) for name, data in sorted(self.files.items())},
            "locale": dict(sorted(self.locale.items())),
        }

    def tapset_dirs(self) -> list[str]:
        """The ``-I`` values (each a validated ``tapset/N``), in order."""
        return [value for name, value in self.options if name == "-I" and value is not None]


_REQUEST_KEYS = {"format", "version", "sysinfo", "options", "script", "args", "files", "locale"}


def _options(value: Any) -> tuple[tuple[str, str | None], ...]:
    if not isinstance(value, list):
        raise ProtocolError("Invalid request: options must be a list")
    result = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise ProtocolError("Invalid request: each option must be [name, value]")
        name, val = item
        if not OPTION_NAME.fullmatch(name):
            raise ProtocolError(f"Invalid request: option name {shown(name)} is not allowed")
        result.append((name, None if val is None else _text(val, f"the value of {name}")))
    return tuple(result)


def decode_request(data: bytes, *, max_files: int = DEFAULT_MAX_FILES) -> Request:
    """Validate a request document (already inflated) into a :class:`Request`.

    Checks structure and names only; which options a client may use is the
    policy table's decision (:mod:`pystap.policy.options`), applied by the
    server and again by the translator.
    """
    document = parse_document(data)
    _check_keys(document, _REQUEST_KEYS, REQUEST_FORMAT, "request")
    sysinfo = document["sysinfo"]
    if not (isinstance(sysinfo, dict) and set(sysinfo) == {"release", "arch"}
            and isinstance(sysinfo["release"], str) and RELEASE.fullmatch(sysinfo["release"])
            and isinstance(sysinfo["arch"], str) and ARCH.fullmatch(sysinfo["arch"])):
        raise ProtocolError("Invalid request: sysinfo must hold a kernel release and an architecture")
    options = _options(document["options"])
    args = document["args"]
    if not isinstance(args, list):
        raise ProtocolError("Invalid request: args must be a list")
    args = tuple(_text(a, "a script argument") for a in args)
    if len(options) * 2 + len(args) > MAX_ARGV:
        raise ProtocolError(f"Invalid request: too many arguments (limit {MAX_ARGV})")
    files_in = document["files"]
    if not isinstance(files_in, dict):
        raise ProtocolError("Invalid request: files must be an object")
    if len(files_in) > max_files:
        raise ProtocolError(f"Invalid request: too many files ({len(files_in)}, limit {max_files})")
    files: dict[str, bytes] = {}
    for name, content in files_in.items():
        if not FILE_NAME.fullmatch(name):
            raise ProtocolError(f"Invalid request: file name {shown(name)} is not allowed")
        files[name] = unb64(content, f"request: file {name}", MAX_RESPONSE)
    script = document["script"]
    scripts = sorted(n for n in files if n.startswith("script/"))
    if script is None:
        if scripts:
            raise ProtocolError("Invalid request: a script file is sent but not named as the script")
    elif not isinstance(script, str) or scripts != [script]:
        raise ProtocolError("Invalid request: script must name the one script/ file of the request")
    for name, value in options:
        if name == "-I" and (value is None or not TAPSET_DIR.fullmatch(value)):
            raise ProtocolError(f"Invalid request: -I {shown(value)} does not name a tapset directory "
                                "of the request")
    declared = {value for name, value in options if name == "-I"}
    for name in files:
        if name.startswith("tapset/") and name.rpartition("/")[0] not in declared:
            raise ProtocolError(f"Invalid request: file {shown(name)} is not in a -I directory")
    locale = document["locale"]
    if not (isinstance(locale, dict) and len(locale) <= MAX_LOCALE
            and all(isinstance(v, str) for v in locale.values())):
        raise ProtocolError("Invalid request: locale must map variable names to strings")
    for key, value in locale.items():
        _text(key, "a locale name", 64)
        _text(value, "a locale value", 256)
        if "\n" in key or "\n" in value:
            raise ProtocolError("Invalid request: locale entries are single lines")
    return Request(sysinfo["release"], sysinfo["arch"], options, script, args, files, dict(locale))


def encode_request(request: Request) -> bytes:
    """The frame body for ``request`` (compressed canonical JSON)."""
    return pack(request.document())


# -- responses ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """The server's answer: the translator's status and outputs, and the signed module if any."""

    rc: int
    stdout: bytes = b""
    stderr: bytes = b""
    module_name: str | None = None
    module: bytes | None = None
    signature: bytes | None = None
    signer_certificate: bytes = b""

    def document(self) -> dict[str, Any]:
        module = None
        if self.module_name is not None and self.module is not None and self.signature is not None:
            module = {"name": self.module_name, "data": b64(self.module), "signature": b64(self.signature)}
        return {
            "format": RESPONSE_FORMAT,
            "version": VERSION,
            "rc": self.rc,
            "stdout": b64(self.stdout),
            "stderr": b64(self.stderr),
            "module": module,
            "signer_certificate": b64(self.signer_certificate),
        }


_RESPONSE_KEYS = {"format", "version", "rc", "stdout", "stderr", "module", "signer_certificate"}
MAX_MODULE = 16 * 1024 * 1024  # pystap.modfile.MAX_MODULE_BYTES
MAX_SIGNATURE = 256 * 1024
MAX_CERTIFICATE = 64 * 1024


def decode_response(data: bytes) -> Response:
    document = parse_document(data, "response")
    _check_keys(document, _RESPONSE_KEYS, RESPONSE_FORMAT, "response")
    rc = document["rc"]
    if type(rc) is not int or not -255 <= rc <= 255:
        raise ProtocolError("Invalid response: rc must be a small integer")
    stdout = unb64(document["stdout"], "response: stdout", MAX_RESPONSE)
    stderr = unb64(document["stderr"], "response: stderr", MAX_RESPONSE)
    cert = unb64(document["signer_certificate"], "response: signer certificate", MAX_CERTIFICATE)
    module = document["module"]
    if module is None:
        return Response(rc, stdout, stderr, signer_certificate=cert)
    if not (isinstance(module, dict) and set(module) == {"name", "data", "signature"}
            and isinstance(module["name"], str) and MODULE_FILE.fullmatch(module["name"])):
        raise ProtocolError("Invalid response: the module entry is malformed")
    return Response(rc, stdout, stderr, module["name"], unb64(module["data"], "response: module", MAX_MODULE),
                    unb64(module["signature"], "response: signature", MAX_SIGNATURE), cert)


@dataclass(frozen=True)
class Hello:
    """What a server says about itself before any request: name, supported targets, signer."""

    server: str
    sysinfo: tuple[tuple[str, str], ...]
    signer_certificate: bytes

    def document(self) -> dict[str, Any]:
        return {
            "format": HELLO_FORMAT,
            "version": VERSION,
            "server": self.server,
            "sysinfo": [{"release": r, "arch": a} for r, a in self.sysinfo],
            "signer_certificate": b64(self.signer_certificate),
        }


_HELLO_KEYS = {"format", "version", "server", "sysinfo", "signer_certificate"}


def decode_hello(data: bytes) -> Hello:
    document = parse_document(data, "hello")
    _check_keys(document, _HELLO_KEYS, HELLO_FORMAT, "hello")
    server, targets = document["server"], document["sysinfo"]
    if not isinstance(server, str) or len(server) > 128 or not isinstance(targets, list) or len(targets) > 64:
        raise ProtocolError("Invalid hello: malformed server description")
    sysinfo = []
    for item in targets:
        if not (isinstance(item, dict) and set(item) == {"release", "arch"}
                and isinstance(item["release"], str) and RELEASE.fullmatch(item["release"])
                and isinstance(item["arch"], str) and ARCH.fullmatch(item["arch"])):
            raise ProtocolError("Invalid hello: malformed sysinfo")
        sysinfo.append((item["release"], item["arch"]))
    cert = unb64(document["signer_certificate"], "hello: signer certificate", MAX_CERTIFICATE)
    return Hello(server, tuple(sysinfo), cert)


def option_argv(options: Sequence[tuple[str, str | None]]) -> list[str]:
    """(name, value) pairs as argv elements: ``-x VALUE`` as two, ``--name=VALUE`` as one."""
    argv: list[str] = []
    for name, value in options:
        if value is None:
            argv.append(name)
        elif name.startswith("--"):
            argv.append(f"{name}={value}")
        else:
            argv.extend((name, value))
    return argv
