"""What every console script does around its Hydra app: errors, validation, the run lock and resume checks.

- :func:`console` turns a ``@hydra.main`` function into a console script whose user errors
  (:class:`~harness.errors.UserError`, a bad override or config group) print ONE line on stderr
  and exit 2; any other exception is a bug: traceback, exit 1. The traceback of a user error shows
  with ``-v`` / ``--verbose`` or ``HYDRA_FULL_ERROR=1``.
- :func:`open_run` validates the composed config (:func:`harness.validation.validate_config`),
  locks the run directory (:mod:`harness.runlock`) and records or checks the config for
  ``resume=true`` (:mod:`harness.resume`). The Hydra callback :class:`RunGuard` (``hydra.callbacks``
  in the stage apps' YAML) calls it before Hydra writes anything into the run directory, so a run
  that is refused leaves the directory as it was; :func:`run_guard`, around each app's body, calls
  it where the callback did not (a ``--multirun`` job, a config without the callback).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hydra.errors import (
    ConfigCompositionException,
    MissingConfigException,
    OverrideParseException,
)
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from harness.errors import ConfigError, UserError
from harness.renames import refuse_renamed
from harness.resume import record_start
from harness.runlock import RunLock, stale_warning
from harness.validation import validate_config

USER_ERRORS = (UserError, ConfigCompositionException, MissingConfigException, OverrideParseException)


class Refused(BaseException):
    """A user error on its way out of Hydra in a single run: Hydra swallows an ``Exception`` from a
    callback and prints "Error executing job" for one from a job, but lets a ``BaseException`` through.
    :func:`console` unwraps it (``error``) and reports it like any user error."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


VERBOSE_FLAGS = ("-v", "--verbose")
_OMEGACONF_DETAIL = ("reference_type=", "object_type=")  # lines of an OmegaConf message that say nothing to a user
_OPEN: dict[Path, RunLock] = {}  # run directories this process holds, by resolved path


def one_line(exc: BaseException) -> str:
    """``exc``'s message (and, for Hydra's composition errors, its cause's) as one line."""
    parts = [str(exc)]
    if not isinstance(exc, UserError) and exc.__cause__ is not None:
        parts.append(str(exc.__cause__))
    lines = [" ".join(line.split()) for part in parts for line in part.splitlines()]
    return "; ".join(line for line in lines if line and not line.startswith(_OMEGACONF_DETAIL))


def exit_code(exc: BaseException) -> int:
    """The exit code a console script gives for ``exc``: 2 for a user error, 1 for anything else (a bug)."""
    return 2 if isinstance(exc, (Refused, *USER_ERRORS)) else 1


def _prog() -> str:
    return Path(sys.argv[0]).name or "harness"


def warn(message: str) -> None:
    """A warning on stderr, prefixed with the program's name (Hydra's logging may not be set up yet)."""
    print(f"{_prog()}: warning: {message}", file=sys.stderr, flush=True)


def console(main: Callable[[], Any], prog: str) -> Callable[[], None]:
    """A console-script entry point around the ``@hydra.main`` function ``main``.

    Strips ``-v``/``--verbose`` from ``sys.argv`` and refuses a renamed key among the overrides
    (:mod:`harness.renames`) before Hydra composes anything; lets Hydra re-raise every exception (it would
    otherwise print its own trimmed traceback and exit 1), then: a user error prints
    ``<prog>: error: <message>`` and exits 2 (after the traceback when verbose or
    ``HYDRA_FULL_ERROR=1``); any other exception prints its traceback and exits 1.
    """
    def entry() -> None:
        verbose = any(a in VERBOSE_FLAGS for a in sys.argv[1:])
        sys.argv[1:] = [a for a in sys.argv[1:] if a not in VERBOSE_FLAGS]
        user_set = os.environ.get("HYDRA_FULL_ERROR")
        os.environ["HYDRA_FULL_ERROR"] = "1"
        try:
            refuse_renamed(sys.argv[1:])
            main()
        except (Refused, *USER_ERRORS) as caught:
            e = caught.error if isinstance(caught, Refused) else caught
            if verbose or user_set == "1":
                traceback.print_exception(e)
            print(f"{prog}: error: {one_line(e)}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        except Exception:
            traceback.print_exc()
            print(f"{prog}: internal error (a bug, not a problem with your input): please report it with the traceback above",
                  file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        finally:
            close_all()
            if user_set is None:
                os.environ.pop("HYDRA_FULL_ERROR", None)
            else:
                os.environ["HYDRA_FULL_ERROR"] = user_set

    entry.__doc__ = main.__doc__
    return entry


def _plain(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """``cfg`` without Hydra's node, ``out_dir`` set to ``run_dir``, every interpolation resolved."""
    cfg = copy.deepcopy(cfg)
    with read_write(cfg), open_dict(cfg):
        cfg.pop("hydra", None)
        cfg.out_dir = str(run_dir)
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        raise ConfigError(f"the config cannot be resolved: {one_line(e)}") from e


def _main_process() -> bool:
    return int(os.environ.get("RANK", "0") or 0) == 0  # under accelerate launch, rank 0 speaks for the run


def open_run(cfg: DictConfig, run_dir: str | Path | None, overrides: list[str] | None = None) -> None:
    """Validate ``cfg``; then, with a ``run_dir``, lock it (once per process) and record or check its config.

    Raises :class:`~harness.errors.ConfigError` for an invalid config,
    :class:`~harness.errors.RunLockedError` when another live run holds ``run_dir``,
    :class:`~harness.errors.ResumeMismatchError` for ``resume=true`` with changed results-affecting
    keys. Prints a warning when it takes over a stale lock.
    """
    validate_config(cfg)
    if run_dir is None:
        return
    run_dir = Path(run_dir).resolve()
    if run_dir in _OPEN or not _main_process():
        return
    lock = RunLock(run_dir)
    previous = lock.acquire()
    _OPEN[run_dir] = lock
    try:
        if previous:
            warn(stale_warning(run_dir, previous))
        message = record_start(run_dir, _plain(cfg, run_dir), bool(cfg.resume), bool(cfg.get("resume_allow_changes", False)),
                               overrides)
        if message:
            warn(message)
    except BaseException:
        close_run(run_dir)
        raise


def close_run(run_dir: str | Path) -> None:
    """Release the lock this process holds on ``run_dir`` (no-op if none)."""
    lock = _OPEN.pop(Path(run_dir).resolve(), None)
    if lock is not None:
        lock.release()


def close_all() -> None:
    """Release every run directory this process holds (a refused run skips Hydra's end-of-run callback)."""
    for run_dir in list(_OPEN):
        close_run(run_dir)


def _single_run() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.RUN


def task(fn: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Decorator between ``@hydra.main`` and an app: in a single run a user error leaves as :class:`Refused`,
    so it reaches :func:`console` as one line. In a ``--multirun`` job it stays an ``Exception`` (Hydra
    records it for that job and runs the others)."""
    @functools.wraps(fn)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return fn(cfg)
        except UserError as e:
            if _single_run():
                raise Refused(e) from e
            raise

    return wrapper


def _task_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


@contextlib.contextmanager
def run_guard(cfg: DictConfig, lock: bool = True) -> Iterator[None]:
    """Around an app's body: :func:`open_run` on ``cfg.out_dir`` (validation only with ``lock=False``),
    unless the :class:`RunGuard` callback already opened it; releases what it opened."""
    run_dir = Path(cfg.out_dir).resolve() if lock else None
    opened_here = run_dir is not None and run_dir not in _OPEN
    open_run(cfg, run_dir, _task_overrides())
    try:
        yield
    finally:
        if opened_here:
            close_run(run_dir)


class RunGuard(Callback):
    """Hydra callback (``hydra.callbacks.run_guard._target_: harness.entry.RunGuard``): :func:`open_run`
    on ``hydra.run.dir`` before Hydra creates it or writes ``.hydra/``, released when the run ends."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            open_run(config, str(config.hydra.run.dir), list(config.hydra.overrides.task))
        except UserError as e:
            raise Refused(e) from e  # an Exception raised here would only become a warning

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        close_run(str(config.hydra.run.dir))
