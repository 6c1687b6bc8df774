"""``gym.make`` with errors a person can act on: which id to use instead, which package to install.

gymnasium's own errors are right but arrive as tracebacks from deep inside its registry, and a
deprecated id only names its successor in prose.  :func:`make_env` turns each into one
:class:`EnvUnavailableError` (a ``ValueError``, so the CLI prints one ``error:`` line) that says
what to do.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
from gymnasium import error as gym_error
from gymnasium.envs.registration import (
    EnvSpec,
    find_highest_version,
    get_env_id,
    parse_env_id,
)

__all__ = ["EnvUnavailableError", "env_spec", "make_env"]


class EnvUnavailableError(ValueError):
    """An env id that cannot be made here: unknown, deprecated, or missing a package."""


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make(env_id, **kwargs)``; raises :class:`EnvUnavailableError` when it cannot be made.

    * unknown name, namespace or version: gymnasium's message (it suggests close names and lists
      the versions that exist);
    * deprecated version (``Taxi-v3``): names the successor (``Taxi-v4``);
    * a missing optional dependency (``LunarLander-v3`` without Box2D): names the pip command,
      from the gymnasium extra the env's module belongs to (``gymnasium[box2d]``).
    """
    # gymnasium warns before it raises (a deprecated id is "out of date", then DeprecatedEnv):
    # its warnings are shown only when the env was made; otherwise the error says it all.
    with warnings.catch_warnings(record=True) as caught, _explained(env_id):
        env = gym.make(env_id, **kwargs)
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return env


def env_spec(env_id: str) -> EnvSpec:
    """``gym.spec(env_id)`` with the errors of :func:`make_env`."""
    with _explained(env_id):
        return gym.spec(env_id)


@contextmanager
def _explained(env_id: str) -> Iterator[None]:
    """Re-raise gymnasium's errors about ``env_id`` as :class:`EnvUnavailableError`."""
    try:
        yield
    except gym_error.DeprecatedEnv as err:
        successor = _successor(env_id)
        hint = f"use {successor} instead" if successor else _one_line(err)
        raise EnvUnavailableError(f"env {env_id} is deprecated: {hint}") from err
    except (gym_error.NameNotFound, gym_error.NamespaceNotFound) as err:
        raise EnvUnavailableError(f"unknown env id {env_id!r}: {_one_line(err)}") from err
    except gym_error.VersionNotFound as err:
        raise EnvUnavailableError(f"unknown env version {env_id!r}: {_one_line(err)}") from err
    except (gym_error.DependencyNotInstalled, ImportError) as err:
        raise EnvUnavailableError(
            f"env {env_id} needs a package that is not installed; {_install_hint(env_id)} "
            f"({_one_line(err)})"
        ) from err
    except gym_error.Error as err:
        raise EnvUnavailableError(f"cannot make env {env_id!r}: {_one_line(err)}") from err


def _successor(env_id: str) -> str | None:
    """The newest registered version of a deprecated id's name (``Taxi-v3`` -> ``Taxi-v4``)."""
    try:
        ns, name, version = parse_env_id(env_id)
        newest = find_highest_version(ns, name)
    except gym_error.Error:
        return None
    if newest is None or (version is not None and newest <= version):
        return None
    return get_env_id(ns, name, newest)


def _install_hint(env_id: str) -> str:
    """``install it with: pip install "gymnasium[EXTRA]"`` when the env is one of gymnasium's
    own (its module lies in ``gymnasium.envs.EXTRA``), else a pointer to the env's package."""
    try:
        entry = gym.spec(env_id).entry_point
    except gym_error.Error:
        entry = None
    module = entry.split(":")[0] if isinstance(entry, str) else ""
    parts = module.split(".")
    if len(parts) >= 3 and parts[:2] == ["gymnasium", "envs"]:
        extra = parts[2].replace("_", "-")
        return f'install it with: pip install "gymnasium[{extra}]"'
    return f"install the package that provides {module or env_id}"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
