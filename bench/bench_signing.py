"""Sign and verify time per key type for a 100 KB module.

Prints one JSON object: median milliseconds per operation for each key type,
the goal (verify under 2 ms for ML-DSA-65 and ECDSA P-256), and the ratio to
the committed baseline (``baseline/signing.json``; > 1 means slower).  Verify
is the whole :func:`pystap.signing.verify` call the root service makes:
envelope parsing, key lookup, signature check, SHA-256 of the module, statement
checks and ``modfile.load`` of the module.  ``--write-baseline`` stores the
current numbers as the new baseline.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pystap import modfile
from pystap.signing import SignerStore, generate_signing_key, sign_module, verify
from pystap.signing.algorithms import KEY_TYPES

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline" / "signing.json"
MODULE_SIZE = 100 * 1024
GOAL_VERIFY_MS = {"ml-dsa-65": 2.0, "ecdsa-p256": 2.0}


def make_module(size: int) -> bytes:
    body = "def probe_0(ctx):\n    pass\n"
    filler = "# " + "x" * 76 + "\n"
    code = body + filler * ((size - 600) // (len(filler) + 1))
    module = modfile.Module(
        name="stap_bench", translator="pystap 0.1.0", privilege="stapusr", release="6.18.0",
        arch="x86_64", script_digest="ab" * 32,
        probes=(modfile.ProbeEntry(id=0, family="begin", point="begin", handler="probe_0"),), code=code,
    )
    return modfile.dump(module)


def median_ms(fn, repeat: int) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 3)


def main(argv: list[str]) -> int:
    module = make_module(MODULE_SIZE)
    now = datetime.now(UTC)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="pystap-bench-") as tmp:
        for key_type in KEY_TYPES:
            key = generate_signing_key(Path(tmp) / key_type, key_type=key_type)
            store = SignerStore.from_certificates([key.certificate])
            sgn = sign_module(module, key, now=now)
            assert verify(module, sgn, store, now).ok
            repeat = 20 if key_type == "rsa-4096" else 100
            results[key_type] = {
                "sign_ms": median_ms(lambda k=key: sign_module(module, k, now=now), repeat),
                "verify_ms": median_ms(lambda s=sgn, st=store: verify(module, s, st, now), 200),
                "sgn_bytes": len(sgn),
            }
    results["module_digest_and_load"] = {
        "ms": median_ms(lambda: (modfile.digest(module), modfile.load(module)), 200),
    }
    report: dict[str, object] = {
        "module_bytes": len(module),
        "results": results,
        "goal_verify_ms": GOAL_VERIFY_MS,
        "goal_met": all(results[k]["verify_ms"] < v for k, v in GOAL_VERIFY_MS.items()),
    }
    if "--write-baseline" in argv:
        BASELINE.write_text(json.dumps({"results": results}, indent=2, sort_keys=True) + "\n")
    elif BASELINE.exists():
        base = json.loads(BASELINE.read_text())["results"]
        ratios: dict[str, dict[str, float]] = {}
        for name, numbers in results.items():
            for metric, value in numbers.items():
                old = base.get(name, {}).get(metric)
                if metric.endswith("_ms") and old:
                    ratios.setdefault(name, {})[metric] = round(value / old, 2)
        report["ratio_to_baseline"] = ratios
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
