"""What the modules' self-tests share: a test whose optional Python packages are absent is skipped with a message
that names them (instead of failing), and ``runTest`` goes on with the other tests."""

from __future__ import annotations


def requirePackages(testCase, groups) -> None:
    """Skip ``testCase`` (``unittest.SkipTest``) when a package of the dependency ``groups`` ("core", "radiomics",
    "modelling", "deep": ``rtresponse.dependencies.GROUPS``) is not installed; the message says which and where to
    install them."""
    from rtresponse import dependencies

    missing = dependencies.missing(groups)
    if missing:
        testCase.skipTest(dependencies.skip_message(missing))


def runEach(testCase, tests) -> list[str]:
    """The body of a ``runTest``: ``setUp()`` then each test; a skipped test is shown as skipped with its reason and
    the others still run (a failure still fails). Returns the skip messages."""
    import unittest

    skipped = []
    for test in tests:
        testCase.setUp()
        try:
            test()
        except unittest.SkipTest as skip:
            skipped.append(f"{test.__name__} {skip}")
            testCase.delayDisplay(f"{test.__name__} {skip}")
    return skipped
