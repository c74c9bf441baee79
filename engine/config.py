"""One path from YAML files and command-line flags to a documented config dataclass.

Every command builds its config the same way::

    parser = ArgumentParser(prog="synthclone generate", description=...)
    parser.add_argument("plan")
    add_out_arg(parser, ".beton to write")           # --out/-o: the same flag in every command
    add_config_file_args(parser, "generate")         # --config FILE.yaml, --set KEY=VALUE
    add_config_args(parser, GenerateConfig)          # --batch-size, --compile/--no-compile, ...
    args = parser.parse_args(argv)
    cfg = config_from_args(GenerateConfig, args, section="generate")

Resolution order: dataclass defaults -> the command's own ``defaults`` (where the CLI differs
from the Python API, e.g. progress bars on) -> the ``section:`` of the YAML file given with
``--config`` -> ``--set key=value`` overrides -> the command's ``extra`` values (custom flags
such as ``plan --recipe NAME=WEIGHT``) -> flags; then *one* validation, the dataclass's
``__post_init__``, after everything is applied. An optional number flag takes ``none``
(``--store-size none``) to set the field to None. Nested dataclass fields are addressed with dots
(``optim.lr=0.1`` or ``--optim.lr 0.1``). Unknown keys are an error that lists the valid ones.

Config YAML files have one shape everywhere: a mapping of sections (``plan:``, ``generate:``,
``train:``, ``eval:``, ...), each a mapping of that command's options.

Flag help comes from the docstring under each dataclass field (as in ``GenerateConfig``).
Flags that mean one thing have one name in every command; the helpers below make the ones that
are not config fields (``--out/-o``, ``--overwrite``, ``--progress/--no-progress``, ``--config``,
``--set``). Old spellings stay accepted, hidden, for one release (``aliases=``).
Errors are :class:`engine.errors.ConfigError` (one line, exit 2 in the CLI).
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import math
import os
import textwrap
import types
import typing

from engine.errors import ConfigError

# ----------------------------------------------------------------------------- argparse


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line (``prog: error: ...``) and
    exit code 2, like every other user error of the product."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_at_least(minimum: int, note: str = ""):
    """``type=`` for a whole-number flag of at least ``minimum``; ``note`` explains the bound in
    the error (``int_at_least(0, "0 shows all")``). Every command's count flags use this (or
    :data:`positive_int`), so they refuse bad values with the same one-line message."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            why = f" ({note})" if note else ""
            raise argparse.ArgumentTypeError(f"must be >= {minimum}{why}, got {value}")
        return value

    parse.__name__ = f"int_at_least_{minimum}"
    return parse


positive_int = int_at_least(1)
"""``type=`` for a flag that counts something and needs at least one (``--grid-rows 10``)."""


# ----------------------------------------------------------------------------- field docs


@functools.lru_cache(maxsize=None)
def field_docs(cls) -> dict[str, str]:
    """``{field: docstring}`` from the string literal under each field of a dataclass (and of
    its dataclass bases); whitespace collapsed."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body
        for a, b in zip(body, body[1:]):
            if (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)
                    and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)
                    and isinstance(b.value.value, str)):
                docs[a.target.id] = " ".join(b.value.value.split())
    return docs


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp):
    """``int | None`` -> (int, True); other types -> (tp, False)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


# ----------------------------------------------------------------------------- flags

_CONFIG_PATHS = "_config_paths"
_CONFIG_DEFAULTS = "_config_defaults"


def add_config_args(parser: argparse.ArgumentParser, cls, *, exclude=(), flags=None,
                    aliases=None, prefix: str = "", group=None, section: str | None = None,
                    defaults: dict | None = None) -> list[str]:
    """Add one flag per field of dataclass ``cls`` (recursing into nested dataclass fields).

    * ``bool`` fields become ``--x/--no-x``; ``int``/``float``/``str`` (optionally ``| None``)
      take a typed value; ``Literal[...]`` fields get ``choices``; ``list[T]``/``tuple[T, ...]``
      take one or more values. Dicts and other types are YAML/``key=value`` only.
    * ``flags``: ``{path: ("--out", "-o")}`` replaces a field's option strings.
    * ``aliases``: ``{path: ("--max-resolution",)}`` adds hidden spellings (kept for one release).
    * ``exclude``: field paths that get no flag (set them another way).
    * ``section``: for a command that builds several configs (``demo``: ``plan`` and
      ``generate``), the config these flags belong to; :func:`config_from_args` with the same
      ``section`` reads only them. Flag names stay undecorated (``--steps``, ``--model``).
    * ``defaults``: ``{path: value}`` where the command's default differs from the dataclass's
      (``pack`` shows a progress bar, the ``pack()`` API does not); shown in the help and
      applied by :func:`config_from_args` before the YAML file.
    Every flag defaults to ``None`` (= not given), so only what the user typed overrides the
    YAML file. Returns the field paths added; :func:`config_from_args` reads them back.
    """
    flags, aliases, exclude = dict(flags or {}), dict(aliases or {}), set(exclude)
    cli_defaults = dict(defaults or {})
    docs, hints = field_docs(cls), _hints(cls)
    target = group or parser
    added: list[str] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        path = prefix + f.name
        if path in exclude:
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(tp):
            sub = parser.add_argument_group(f"{path} options", docs.get(f.name))
            added += add_config_args(parser, tp, exclude=exclude, flags=flags, aliases=aliases,
                                     prefix=path + ".", group=sub, section=section,
                                     defaults={k: v for k, v in cli_defaults.items()
                                               if k.startswith(path + ".")})
            continue
        kwargs = _flag_kwargs(tp, optional=_unwrap_optional(hints[f.name])[1])
        if kwargs is None:
            continue
        default = cli_defaults[path] if path in cli_defaults else _default_of(f)
        help_ = docs.get(f.name, "").replace("``", "")
        if default not in (dataclasses.MISSING, None) and not isinstance(default,
                                                                          (list, dict, tuple)):
            help_ += f" [default: {default}]"
        names = flags.get(path) or ("--" + path.replace("_", "-"),)
        dest = f"{section}:{path}" if section else path
        target.add_argument(*names, dest=dest, default=None, help=help_.replace("%", "%%"),
                            **kwargs)
        for alias in aliases.get(path, ()):
            target.add_argument(alias, dest=dest, default=None, help=argparse.SUPPRESS, **kwargs)
        added.append(path)
    if not prefix:  # the outermost call records what it (and its nested calls) added
        known = list(parser.get_default(_CONFIG_PATHS) or [])
        known_defaults = list(parser.get_default(_CONFIG_DEFAULTS) or [])
        parser.set_defaults(**{_CONFIG_PATHS: known + [(section, p) for p in added],
                               _CONFIG_DEFAULTS: known_defaults + [(section, cli_defaults)]})
    return added


def _default_of(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


NONE = "none"
"""What an optional number flag takes to set its field to None (``--store-size none``)."""


class _NoneValue:
    """An explicit ``none`` on the command line (``None`` itself means "flag not given")."""

    def __repr__(self):
        return NONE


_EXPLICIT_NONE = _NoneValue()


def _optional(parse):
    def convert(text: str):
        return _EXPLICIT_NONE if text.strip().lower() == NONE else parse(text)

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _flag_kwargs(tp, optional: bool = False) -> dict | None:
    origin = typing.get_origin(tp)
    if tp is bool:
        return {"action": argparse.BooleanOptionalAction}
    if tp in (int, float) and optional:
        return {"type": _optional(_finite if tp is float else tp),
                "metavar": f"{tp.__name__.upper()}|{NONE}"}
    if tp in (int, float, str):
        return {"type": _finite if tp is float else tp, "metavar": tp.__name__.upper()}
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        return {"choices": choices, "type": type(choices[0])}
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = args[0] if args else str
        if inner in (int, float, str):
            return {"nargs": "+", "type": _finite if inner is float else inner}
    return None


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


finite_float = _finite
"""``type=`` for a float flag that refuses ``nan``/``inf`` (what config flags use)."""


def parse_assignments(items) -> dict:
    """``["optim.lr=0.1", "model.name=resnet50"]`` -> ``{"optim.lr": 0.1, ...}``; each value is
    parsed as YAML (numbers, booleans, lists), so ``epochs=10`` gives an int."""
    import yaml

    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected KEY=VALUE (e.g. optim.lr=0.1)")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from None
    return out


def config_from_args(cls, args: argparse.Namespace, *, section: str | None = None,
                     yaml_path: str | None = None, assignments=None, extra: dict | None = None,
                     defaults: dict | None = None):
    """Build ``cls``: ``defaults`` (the command's own; those given to :func:`add_config_args`
    are added), then ``--config`` (``args.config``
    unless ``yaml_path`` is given; its ``section:``), then ``key=value`` ``assignments``
    (``args.assignments``, i.e. ``--set``, unless given), then ``extra`` (values of the
    command's custom flags; ``None`` = not given), then the flags that :func:`add_config_args`
    added and the user gave; then one validation."""
    if yaml_path is None:
        yaml_path = getattr(args, "config", None)
    if assignments is None:
        assignments = getattr(args, "assignments", None)
    merged_defaults: dict = {}
    for flag_section, values in getattr(args, _CONFIG_DEFAULTS, None) or ():
        if flag_section is None or flag_section == section:
            merged_defaults.update(values)
    merged_defaults.update(defaults or {})
    overrides = parse_assignments(assignments)
    overrides.update({k: v for k, v in (extra or {}).items() if v is not None})
    for flag_section, path in getattr(args, _CONFIG_PATHS, None) or ():
        if flag_section is not None and flag_section != section:
            continue
        value = getattr(args, f"{flag_section}:{path}" if flag_section else path, None)
        if value is not None:
            overrides[path] = value
    return load_config(cls, yaml_path, section=section, overrides=overrides,
                       defaults=merged_defaults)


# ----------------------------------------------------------------------------- YAML


def load_yaml(path: str) -> dict:
    """A YAML file as a mapping (errors name the file)."""
    import yaml

    if os.path.isdir(path):
        raise ConfigError(f"config {path} is a directory; give a YAML file")
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (plan:, generate:, ...)")
    return data


def load_section(path: str, section: str) -> dict:
    """The ``section:`` mapping of a config file (error if absent, naming the sections it has)."""
    data = load_yaml(path)
    if section not in data:
        raise ConfigError(f"{path} has no '{section}:' section (it has: "
                          f"{', '.join(map(str, data)) or 'nothing'})")
    value = data[section] or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: '{section}:' must be a mapping of options")
    return value


def load_config(cls, yaml_path: str | None = None, *, section: str | None = None,
                overrides: dict | None = None, defaults: dict | None = None):
    """Dataclass defaults -> ``defaults`` -> ``section`` of ``yaml_path`` -> ``overrides``
    (dotted keys allowed; ``None`` values ignored, an explicit ``none`` flag sets None) -> one
    validation. Unknown keys raise :class:`ConfigError`.

    Config files have one shape: ``section`` names the part this config reads (``plan``,
    ``generate``, ...); without ``section`` the whole file is the config (for callers that
    store a single config, e.g. a run folder's record)."""
    values: dict = {}
    for key, value in (defaults or {}).items():
        _set_dotted(values, key, value)
    if yaml_path:  # a key of the file replaces the command's default for that key wholesale
        values.update(_deep_copy(load_section(yaml_path, section) if section
                                 else load_yaml(yaml_path)))
    for key, value in (overrides or {}).items():
        if value is _EXPLICIT_NONE:
            _set_dotted(values, key, None)
        elif value is not None:
            _set_dotted(values, key, value)
    return build(cls, values)


def build(cls, values: dict, where: str = ""):
    """Construct dataclass ``cls`` from a (nested) mapping, coercing and checking types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields), key=str)
    if unknown:
        raise ConfigError(
            f"unknown {cls.__name__} option(s) {', '.join(where + str(k) for k in unknown)} "
            f"(valid: {', '.join(where + k for k in fields)})")
    hints, kwargs = _hints(cls), {}
    for name, value in values.items():
        kwargs[name] = _coerce(value, hints[name], f"{where}{name}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as exc:  # __post_init__ validation of user-given values
        raise ConfigError(f"{where.rstrip('.') + ': ' if where else ''}{exc}") from None


def _coerce(value, tp, where: str):
    inner, optional = _unwrap_optional(tp)
    if value is None:
        if optional or tp is typing.Any:
            return None
        raise ConfigError(f"{where}: may not be empty")
    if dataclasses.is_dataclass(inner):
        if dataclasses.is_dataclass(value):
            return value
        return build(inner, value, where + ".")
    origin = typing.get_origin(inner)
    if inner is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if inner is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if inner is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if inner is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return str(value)
    if origin is typing.Literal:
        choices = typing.get_args(inner)
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            value = [value]
        args = [a for a in typing.get_args(inner) if a is not Ellipsis]
        item_tp = args[0] if args else typing.Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def _set_dotted(values: dict, key: str, value) -> None:
    parts = key.split(".")
    node = values
    for p in parts[:-1]:
        child = node.get(p)
        if not isinstance(child, dict):
            child = node[p] = {} if child is None else child
            if not isinstance(child, dict):
                raise ConfigError(f"override {key}: {p} is not a section")
        node = child
    node[parts[-1]] = value


def _deep_copy(d):
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deep_copy(v) for v in d]
    return d


def to_dict(cfg) -> dict:
    """A config dataclass as plain YAML-safe data (tuples become lists)."""
    def plain(v):
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


# ----------------------------------------------------------------------------- shared flags
# Flags that are not config fields but mean one thing in every command: one helper each, so
# their names and help read the same everywhere (tests/test_cli_contract.py compares them).


def add_config_file_args(parser: argparse.ArgumentParser, section: str,
                         example: str = "seed=1", assignments: bool = True) -> None:
    """``--config FILE.yaml`` (its ``section:`` sets the command's options) and, unless
    ``assignments`` is False, ``--set KEY=VALUE`` (repeatable)."""
    parser.add_argument("--config", metavar="FILE.yaml",
                        help=f"YAML config file; its '{section}:' section sets the options "
                             "below (--set and flags override it)")
    if assignments:
        parser.add_argument("--set", dest="assignments", action="append", metavar="KEY=VALUE",
                            help=f"set one '{section}:' option (repeatable), e.g. --set "
                                 f"{example}; applied after --config, before flags")


def add_out_arg(parser: argparse.ArgumentParser, what: str, *, required: bool = True,
                default: str | None = None, metavar: str = "OUT") -> None:
    """``--out/-o``: where the command writes (``what`` says what that is)."""
    help_ = f"output: {what}" + (f" [default: {default}]" if default else "")
    parser.add_argument("--out", "-o", required=required and default is None, default=default,
                        metavar=metavar, help=help_)


def add_overwrite_arg(parser: argparse.ArgumentParser,
                      what: str = "an existing output (without it: refuse)") -> None:
    """``--overwrite``: replace an existing output instead of refusing (or resuming)."""
    parser.add_argument("--overwrite", action="store_true", help=f"replace {what}")


PROGRESS_HELP = "Show a progress bar on stderr."


def add_progress_arg(parser: argparse.ArgumentParser, default: bool = True) -> None:
    """``--progress/--no-progress`` (hidden old spelling ``--quiet`` = ``--no-progress``), for
    commands whose progress switch is not a config field."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=default,
                        help=f"{PROGRESS_HELP} [default: {default}]")
    add_quiet_alias(parser)


def add_quiet_alias(parser: argparse.ArgumentParser, dest: str = "progress") -> None:
    """The hidden old spelling ``--quiet`` of ``--no-progress`` (kept for one release)."""
    parser.add_argument("--quiet", dest=dest, action="store_const", const=False,
                        help=argparse.SUPPRESS)
