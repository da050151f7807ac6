"""What the fuzz tests share: hypothesis's settings profiles and the one property every command
line must have.

Profiles (selected with the environment variable HYPOTHESIS_PROFILE, default ``ci``):

    ci    a few hundred examples per test: thousands in all, the fuzz files in about 30 s
    long  20x as many, for a one-off search before a release (docs/cli.md, testing)

Both derandomize, so a failure in CI reproduces on the next run; the ``long`` profile reseeds
from the date it is run with ``HYPOTHESIS_SEED`` if you want a different search. No example
database is written (tests must not leave files behind); a case worth keeping goes into
``tests/fuzz/test_fuzz_regressions.py`` as a plain test.
"""

from __future__ import annotations

import os
import unicodedata

from hypothesis import HealthCheck, settings

# Examples per test in CI; the fuzz tests scale theirs from it (a cheap property gets more).
CI_EXAMPLES = 300
_COMMON = dict(deadline=None, database=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                      HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=CI_EXAMPLES, **_COMMON)
settings.register_profile("long", max_examples=20 * CI_EXAMPLES, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def examples(share: float = 1.0) -> int:
    """The loaded profile's examples per test, times ``share`` (an expensive test asks for fewer)."""
    return max(10, int(settings.default.max_examples * share))


def check_clean_exit(code: int, err: str) -> None:
    """A command either succeeds (0) or is a user error: exit 2 and exactly one line on stderr,
    in the CLI's own format, never a traceback."""
    from hypothesis import event
    from hypothesis.control import currently_in_test_context

    if currently_in_test_context():  # --hypothesis-show-statistics: how many got past validation
        event(f"exit code {code}")
    assert "Traceback" not in err, err
    if code == 0:
        return
    assert code == 2, (code, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("memformer"), err
    # Nothing that acts on a terminal (ESC, CR, BEL): the user's values are echoed escaped.
    assert not any(unicodedata.category(ch) == "Cc" for ch in lines[0]), err
    assert ": error: " in lines[0], err


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``memformer ARGV`` in this process: (exit code, stdout, stderr)."""
    import contextlib
    import io

    from torch_memformer.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()
