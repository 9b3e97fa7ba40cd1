"""What a broken configuration looks like to the person who wrote it.

The tree::

    Exception
    └── ConfigError          one or more problems with the configuration
                             (``.problems``: list[Problem], each ``path: message``)

A :class:`Problem` names the place in the file with a path such as
``systems[1].base_url`` or ``thresholds.tags.hero.percent`` and says what is wrong in
a few words. Problems about the file as a whole (not found, not TOML) have the empty
path. :class:`ConfigError` is not a ``ValueError`` on purpose: pydantic turns a
``ValueError`` raised inside a validator into one of its own errors, and the
configuration model raises :class:`ConfigError` from its validator so that every
problem, structural or cross-reference, arrives together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the configuration.

    :param path: where, e.g. ``systems[1].base_url``; empty for the file as a whole.
    :param message: what, short and human, e.g. ``not a URL``. Never contains a
        secret's value.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def format_problems(problems: Iterable[Problem]) -> str:
    """One line per problem, ``path: message``."""
    return "\n".join(str(problem) for problem in problems)


class ConfigError(Exception):
    """The configuration is not usable; ``problems`` lists every reason found."""

    def __init__(self, problems: Sequence[Problem], *, source: str | None = None) -> None:
        self.problems: list[Problem] = list(problems)
        self.source = source
        super().__init__(self._summary())

    def _summary(self) -> str:
        if all(not problem.path for problem in self.problems):
            return format_problems(self.problems)
        count = len(self.problems)
        where = f"{self.source}: " if self.source else ""
        noun = "problem" if count == 1 else "problems"
        return f"{where}{count} configuration {noun}:\n{format_problems(self.problems)}"

    def __str__(self) -> str:
        return self._summary()
