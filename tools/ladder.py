r"""Runs a training ladder: the stages of a recipe (``configs/ladders/*.py``), one ``train.py`` run each.

::

    python tools/ladder.py configs/ladders/bmshj2017_factorized.py --part cpu
    python tools/ladder.py configs/ladders/bmshj2017_factorized.py --part gpu --dry-run
    python tools/ladder.py RECIPE --set runs=/data/runs --set tune_steps=500 --from fq7d
    python tools/ladder.py RECIPE --only fq4,fq5 -- --config.log_every=50

Stages run in the recipe's order. A stage whose workdir already holds the checkpoint of its last
step and its codec tables (``codec_tables.npz``, which a factorized run writes after its last
step) is skipped, so running the same command again resumes the ladder: an unfinished stage is
started again and ``train.py`` resumes it from its latest checkpoint. ``--dry-run`` prints the
command lines instead (a shell script; stages that would be skipped are marked), ``--only``
runs the named stages, ``--from`` the stages from the named one on, ``--part`` one part of the
recipe; flags after ``--`` go to every ``train.py`` run, after the recipe's.

A recipe is a Python file defining ``RECIPE`` (or a ``.json`` file holding it), a dict of:

``config``
    ``train.py --config`` of every stage, e.g. ``"configs/factorized.py:{quality}"``.
``workdir``
    a stage's workdir, e.g. ``"{runs}/{name}"``.
``settings``
    names that ``{NAME}`` in any text of the recipe refers to (also in other settings);
    ``--set NAME=VALUE`` replaces one.
``flags``
    config overrides of every stage (``{"data.crop": 128}`` runs ``--config.data.crop=128``).
``parts``
    ``{PART: [phase, ...]}``, run in this order. A phase is a dict of ``title``; ``config``
    (overrides of its stages, after ``flags``); ``stages``: a list of dicts of ``name``
    (unique), ``quality``, optionally ``workdir`` (instead of the recipe's), optionally
    ``init_from`` (the name of an earlier stage: starts from its workdir) and any config
    field, as on train.py's command line (``"num_steps": "{tune_steps}"``,
    ``"model.init_latent_scale": 1.41421356``), which come last; ``side_by_side``: true runs
    the phase's stages at once, one process each, each writing its output to its workdir
    followed by ``.log``; ``env``: environment variables of its processes. A phase may
    instead hold ``exports``: a list of ``name``, ``quality`` and ``from`` (a stage), each
    run as ``python -m jaxcodec export WORKDIR NAME --description DESCRIPTION`` with the
    phase's ``description``; exports always run.

Relative paths are relative to the current directory (run from the repository root, as
``make`` does); ``configs/...`` and ``train.py`` are found in this repository.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import shlex
import string
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_SCRIPT = os.path.join(ROOT, "train.py")
CHECKPOINTS_DIR = "checkpoints"
TABLES_FILE = "codec_tables.npz"
STAGE_KEYS = ("name", "quality", "workdir", "init_from")  # every other key of a stage is a config field


class RecipeError(Exception):
    """A recipe, a setting or a stage name that cannot be used."""


@dataclasses.dataclass(frozen=True)
class Step:
    """One command of the ladder: a training stage or an export."""

    name: str
    part: str
    title: str
    argv: tuple[str, ...]  # after the Python interpreter
    workdir: str  # the stage's workdir, or the exported one
    num_steps: int | None  # None for an export
    summary: str
    env: tuple[tuple[str, str], ...] = ()
    log: str | None = None  # side by side: the file its output goes to
    group: int | None = None  # steps with one group number run at once

    @property
    def is_export(self) -> bool:
        return self.num_steps is None


def load_recipe(path: str) -> dict[str, Any]:
    """The ``RECIPE`` dict of a recipe file (``.py``) or the dict a ``.json`` file holds."""
    if not os.path.isfile(path):
        raise RecipeError(f"no recipe file {path}")
    if path.endswith(".json"):
        with open(path) as f:
            recipe = json.load(f)
    else:
        spec = importlib.util.spec_from_file_location("ladder_recipe", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        recipe = getattr(module, "RECIPE", None)
    if not isinstance(recipe, dict) or not isinstance(recipe.get("parts"), dict):
        raise RecipeError(f"{path} defines no RECIPE dict with parts")
    return recipe


def _text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _fill(value: Any, names: dict[str, str], where: str) -> str:
    """``value`` as text, with every ``{NAME}`` replaced by ``names[NAME]``."""
    text = _text(value)
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
        unknown = sorted(fields - set(names))
        if unknown:
            raise RecipeError(f"{where}: unknown name {{{unknown[0]}}} in {text!r}; known: {', '.join(sorted(names))}")
        return text.format(**names)
    except (ValueError, IndexError) as e:
        raise RecipeError(f"{where}: cannot fill in {text!r}: {e}") from None


def resolve_settings(recipe: dict[str, Any], overrides: Sequence[str] = ()) -> dict[str, str]:
    """The recipe's settings with ``NAME=VALUE`` overrides applied and ``{NAME}`` filled in."""
    raw = {name: _text(value) for name, value in recipe.get("settings", {}).items()}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep:
            raise RecipeError(f"--set takes NAME=VALUE, got {item!r}")
        if name not in raw:
            raise RecipeError(f"--set {name}: the recipe has no setting {name!r}; it has {', '.join(sorted(raw))}")
        raw[name] = value
    resolved: dict[str, str] = {}
    while len(resolved) < len(raw):  # settings may refer to settings, in any order
        progress = False
        for name, value in raw.items():
            fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
            if name not in resolved and fields <= set(resolved):
                resolved[name] = _fill(value, resolved, f"setting {name}")
                progress = True
        if not progress:
            for name in sorted(set(raw) - set(resolved)):
                _fill(raw[name], raw, f"setting {name}")  # raises when it names no setting
            circle = ", ".join(sorted(set(raw) - set(resolved)))
            raise RecipeError(f"settings refer to each other in a circle: {circle}")
    return resolved


def plan(recipe: dict[str, Any], settings: dict[str, str], extra_flags: Sequence[str] = ()) -> list[Step]:
    """Every step of the recipe, in order, checked (unique names, ``init_from`` of an earlier stage)."""
    config_template = recipe.get("config")
    workdir_template = recipe.get("workdir", "{name}")
    if not config_template:
        raise RecipeError("the recipe names no config")
    flags = dict(recipe.get("flags", {}))
    steps: list[Step] = []
    workdirs: dict[str, str] = {}
    group = 0
    for part, phases in recipe["parts"].items():
        for phase in phases:
            title = phase.get("title", "")
            if "exports" in phase:
                for entry in phase["exports"]:
                    name = entry["name"]
                    source = entry.get("from")
                    if name in workdirs or any(s.name == name for s in steps):
                        raise RecipeError(f"two steps are named {name}")
                    if source not in workdirs:
                        raise RecipeError(f"export {name}: 'from' {source!r} is no earlier stage")
                    names = {**settings, "name": name, "quality": _text(entry.get("quality", ""))}
                    description = _fill(phase.get("description", ""), names, f"export {name}")
                    argv = ("-m", "jaxcodec", "export", workdirs[source], name, "--description", description)
                    steps.append(Step(name, part, title, argv, workdirs[source], None,
                                      f"export {source} as {name}"))
                continue
            side_by_side = bool(phase.get("side_by_side", False))
            if side_by_side:
                group += 1
            for stage in phase.get("stages", []):
                name = stage.get("name")
                if not name:
                    raise RecipeError(f"a stage of {part} ({title}) has no name")
                if name in workdirs or any(s.name == name for s in steps):
                    raise RecipeError(f"two steps are named {name}")
                names = {**settings, "name": name, "quality": _text(stage.get("quality", ""))}
                where = f"stage {name}"
                workdir = _fill(stage.get("workdir", workdir_template), names, where)
                overrides = {**flags, **phase.get("config", {})}
                overrides.update({k: v for k, v in stage.items() if k not in STAGE_KEYS})
                values = {key: _fill(value, names, where) for key, value in overrides.items()}
                if "num_steps" not in values:
                    raise RecipeError(f"{where} has no num_steps")
                try:
                    num_steps = int(values["num_steps"])
                except ValueError:
                    raise RecipeError(f"{where}: num_steps {values['num_steps']!r} is no integer") from None
                init_from = stage.get("init_from")
                if init_from is not None and init_from not in workdirs:
                    raise RecipeError(f"{where}: init_from {init_from!r} is no earlier stage")
                config = _fill(config_template, names, where)
                config_file, colon, argument = config.partition(":")
                config = _path(config_file) + colon + argument
                argv = [_path(TRAIN_SCRIPT), "--config", config, "--workdir", workdir]
                argv += [f"--config.{key}={value}" for key, value in values.items()]
                if init_from is not None:
                    argv.append(f"--config.init_from={workdirs[init_from]}")
                argv += list(extra_flags)
                summary = f"quality {stage.get('quality', '?')}, {num_steps} steps"
                summary += f" from {init_from}" if init_from else " from scratch"
                env = tuple((key, _fill(value, names, where)) for key, value in phase.get("env", {}).items())
                workdirs[name] = workdir
                steps.append(Step(name, part, title, tuple(argv), workdir, num_steps, summary, env,
                                  log=workdir + ".log" if side_by_side else None,
                                  group=group if side_by_side else None))
    return steps


def _path(path: str) -> str:
    """A file of this repository (relative paths: from its root) as the current directory reaches it."""
    full = path if os.path.isabs(path) else os.path.join(ROOT, path)
    relative = os.path.relpath(full)
    return full if relative.startswith(os.pardir) else relative


def select(steps: list[Step], parts: Sequence[str] = (), only: Sequence[str] = (),
           start: str | None = None) -> list[Step]:
    """The steps of ``parts`` (all when empty), only those named in ``only``, from ``start`` on."""
    known_parts = list(dict.fromkeys(s.part for s in steps))
    for part in parts:
        if part not in known_parts:
            raise RecipeError(f"no part {part!r} in the recipe; it has {', '.join(known_parts)}")
    names = [s.name for s in steps]
    for name in list(only) + ([start] if start else []):
        if name not in names:
            raise RecipeError(f"no stage {name!r} in the recipe; it has {', '.join(names)}")
    chosen = [s for s in steps if not parts or s.part in parts]
    if start:
        if start not in [s.name for s in chosen]:
            raise RecipeError(f"stage {start} is not in part {', '.join(parts)}")
        chosen = chosen[[s.name for s in chosen].index(start):]
    if only:
        chosen = [s for s in chosen if s.name in only]
    return chosen


def is_finished(step: Step) -> bool:
    """Whether the stage's workdir holds the checkpoint of its last step and its codec tables."""
    if step.is_export:
        return False
    return (os.path.isdir(os.path.join(step.workdir, CHECKPOINTS_DIR, str(step.num_steps)))
            and os.path.isfile(os.path.join(step.workdir, TABLES_FILE)))


def command_line(step: Step, python: str) -> str:
    """The step as one shell command line."""
    text = shlex.join([python, *step.argv])
    if step.env:
        text = " ".join(f"{key}={shlex.quote(value)}" for key, value in step.env) + " " + text
    if step.log:
        text += f" > {shlex.quote(step.log)} 2>&1 &"
    return text


def dry_run(steps: list[Step], python: str, out: Callable[[str], None] = print) -> None:
    """Prints the steps as a shell script."""
    for i, step in enumerate(steps):
        if i == 0 or step.title != steps[i - 1].title or step.part != steps[i - 1].part:
            out(f"# {step.part}: {step.title}")
        if is_finished(step):
            out(f"# {step.name}: already finished, skipped")
        else:
            out(command_line(step, python))
        if step.group is not None and (i + 1 == len(steps) or steps[i + 1].group != step.group):
            out("wait")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _last_line(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(f.tell() - 4096, 0))
            lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def run(steps: list[Step], python: str, out: Callable[[str], None] = print) -> int:
    """Runs the steps in order (side-by-side groups at once); returns 0, or 1 after a failure."""
    total = len(steps)
    finished = sum(is_finished(s) for s in steps)
    out(f"ladder: {total} steps, {finished} already finished")
    i = 0
    while i < total:
        batch = [steps[i]]
        while steps[i].group is not None and i + len(batch) < total and steps[i + len(batch)].group == steps[i].group:
            batch.append(steps[i + len(batch)])
        first = i + 1
        i += len(batch)
        running = []
        for number, step in enumerate(batch, first):
            label = f"[{number}/{total}] {step.name}"
            if is_finished(step):
                out(f"ladder: {label}: already finished, skipped")
                continue
            out(f"ladder: {label}: {step.summary}" + (f" (output in {step.log})" if step.log else ""))
            env = {**os.environ, **dict(step.env)}
            began = time.monotonic()
            if step.log is None:
                code = subprocess.run([python, *step.argv], env=env).returncode
                if code:
                    out(f"ladder: {label} failed (exit status {code}); "
                        "run the ladder again to resume it from its last checkpoint")
                    return 1
                out(f"ladder: {label} done in {_duration(time.monotonic() - began)}")
                continue
            os.makedirs(os.path.dirname(os.path.abspath(step.log)), exist_ok=True)
            with open(step.log, "wb") as log:
                process = subprocess.Popen([python, *step.argv], env=env, stdout=log, stderr=subprocess.STDOUT)
            running.append((label, step, process, began))
        failed = []
        for label, step, process, began in running:
            code = process.wait()
            if code:
                failed.append(step.name)
                out(f"ladder: {label} failed (exit status {code}): {_last_line(step.log)}")
            else:
                out(f"ladder: {label} done in {_duration(time.monotonic() - began)}")
        if failed:
            out(f"ladder: {', '.join(failed)} failed (output in their .log files); "
                "run the ladder again to resume from the last checkpoints")
            return 1
    out("ladder: all steps done")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     usage="%(prog)s RECIPE [options] [-- TRAIN_FLAGS]")
    parser.add_argument("recipe", help="recipe file (configs/ladders/*.py or .json)")
    parser.add_argument("--part", action="append", default=[], help="run this part of the recipe (repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="replace one of the recipe's settings (repeatable)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME[,NAME...]",
                        help="run only these stages")
    parser.add_argument("--from", dest="start", metavar="NAME", help="start at this stage")
    parser.add_argument("--dry-run", action="store_true", help="print the command lines, run nothing")
    args = parser.parse_args(argv)
    only = [name for item in args.only for name in item.split(",") if name]
    try:
        recipe = load_recipe(args.recipe)
        steps = plan(recipe, resolve_settings(recipe, args.set), extra)
        steps = select(steps, args.part, only, args.start)
    except RecipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        dry_run(steps, sys.executable)
        return 0
    return run(steps, sys.executable, out=lambda line: print(line, flush=True))


if __name__ == "__main__":
    sys.exit(main())
