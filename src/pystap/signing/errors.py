"""The one exception type of the signing library.

Everything a user or administrator can cause (a missing key, a wrong
passphrase, a module that does not load, a weak certificate) is a
:class:`SigningError` whose message says what to do, so command-line tools can
print it without a traceback.  Verification never raises it: verification
answers with a :class:`~pystap.signing.verdict.Verdict`.
"""

from __future__ import annotations


class SigningError(Exception):
    """A signing, key or trust-store operation failed; the message is for the user."""


class PassphraseNeeded(SigningError):
    """The key is encrypted and no passphrase was given: a caller with a terminal may ask for one."""
