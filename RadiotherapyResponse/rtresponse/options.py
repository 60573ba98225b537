"""Number options of the command line, checked when parsed: finite and in their range, or one clear message.

Each factory returns an argparse ``type``: ``integer(1)`` is a whole number >= 1,
``number(0, 1, low_open=True)`` a finite number in (0, 1]. A bad value ends as
``rtresponse: error: argument --jobs: must be a whole number >= 1, got 0`` and exit code 2.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, leaving out the deprecated spellings of an option (they still work)."""

    def _format_action_invocation(self, action):
        hidden = getattr(action, "deprecated", ())
        if hidden and action.option_strings:
            action = copy.copy(action)
            action.option_strings = [s for s in action.option_strings if s not in hidden]
        return super()._format_action_invocation(action)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line ``rtresponse: error: ...`` (exit code 2), like every other error;
    its help leaves out deprecated spellings (:class:`Spelled`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"rtresponse: error: {message} (see `{self.prog} --help`)\n")


# --- one option style across commands: old spellings keep working, with a note ---------------------------------------

IMAGE = "--image"  # every command chooses its image(s) with --image (tests check that no command spells it otherwise)


def note_deprecated(parser, old: str, new: str) -> None:
    """One line on stderr, once per command line: ``rtresponse: note: --ct is deprecated; use --image ...``."""
    noted = parser.__dict__.setdefault("_deprecated_noted", set())
    if old not in noted:
        noted.add(old)
        print(f"rtresponse: note: {old} is deprecated (it still works); use {new}", file=sys.stderr)


class Spelled(argparse.Action):
    """An option with deprecated spellings among its ``option_strings`` (``deprecated``: they work as the option,
    print a note naming ``instead``, and are left out of the help).

    ``collect``: ``store`` (the value), ``append`` (one value per use) or ``extend`` (several per use, in order);
    a list default is replaced by the first use, not extended (argparse's own append would keep the default's items).
    """

    def __init__(self, option_strings, dest, deprecated=(), instead: str | None = None, collect: str = "store",
                 **kwargs):
        if collect not in ("store", "append", "extend"):
            raise ValueError(f"collect must be store, append or extend, got {collect}")
        if collect == "extend":
            kwargs.setdefault("nargs", "+")
        self.deprecated, self.collect = tuple(deprecated), collect
        self.instead = instead or option_strings[0]
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.deprecated:
            note_deprecated(parser, option_string, self.instead)
        if self.collect == "store":
            setattr(namespace, self.dest, values)
            return
        current = getattr(namespace, self.dest, None)
        found = [] if current is None or current is self.default else list(current)
        found += list(values) if self.collect == "extend" else [values]
        setattr(namespace, self.dest, found)


class ImageAt(argparse.Action):
    """A deprecated spelling naming one image of a ``--image`` list by its place (``recurrence``'s ``--ct`` is the
    first image, ``--pet`` the second); hidden from the help, with a note when used."""

    def __init__(self, option_strings, dest, position: int = 0, instead: str = IMAGE, **kwargs):
        self.position, self.instead = position, instead
        kwargs.update(help=argparse.SUPPRESS, default=argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)
        self.deprecated = tuple(option_strings)

    def __call__(self, parser, namespace, values, option_string=None):
        note_deprecated(parser, option_string, self.instead)
        names = list(getattr(namespace, self.dest, None) or [])
        if self.position < len(names):
            names[self.position] = values
        else:
            names.append(values)
        setattr(namespace, self.dest, names)


def _range_text(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "finite"


def integer(low: int | None = None, high: int | None = None):
    """A whole number in [low, high]."""
    wanted = f"a whole number {_range_text(low, high, False, False)}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got '{text}'") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def number(low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False):
    """A finite number in the range (open or closed ends); NaN and infinity are refused."""
    wanted = f"a finite number {_range_text(low, high, low_open, high_open)}".replace("finite number finite",
                                                                                       "finite number")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got '{text}'") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {value:g}")
        if high is not None and (value > high or (high_open and value == high)):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {value:g}")
        return value

    parse.__name__ = "number"
    return parse


# the ranges used across commands
COUNT = integer(1)            # patients, epochs, jobs, batch sizes, sizes in voxels
COUNT_OR_ZERO = integer(0)    # optional extras (perturbations, trials, augmented copies)
SEED = integer(0, 2 ** 32 - 1)  # what numpy and torch accept
DRAWS = integer(1, 100_000)   # bootstrap draws: 1000 is the paper's; more is a typo, not a study
POSITIVE = number(0, low_open=True)
NON_NEGATIVE = number(0)
FINITE = number()
PROBABILITY = number(0, 1)
FRACTION = number(0, 1, low_open=True, high_open=True)


def _rate(text: str) -> float:
    """A regression-rate threshold as a fraction per day (``labels`` prints both 0.01691 per day and 1.691 %/day,
    so 1.691 is a likely mix-up)."""
    value = number()(text)
    if abs(value) >= 1:
        raise argparse.ArgumentTypeError(f"is a fraction per day (1.691 %/day is 0.01691), got {value:g}: "
                                         f"more than 100 % per day is not a regression rate; did you mean "
                                         f"{value / 100:g}?")
    return value


RATE = _rate


def scheduler(text: str) -> str:
    """Where cohort-scale work runs (:mod:`rtresponse.execution`): '' or 'local', 'local-cluster[:N]', a Dask
    address or a cluster config file; checked for its form only (no connection while parsing)."""
    from .errors import InputError
    from .execution import check_scheduler

    try:
        return check_scheduler(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


SCHEDULER = scheduler
