"""Config dataclasses whose fields are the command-line flags.

Each experiment's `config.py` holds one dataclass; `parse_config(cls)` turns every field into a flag
(`--model_heads 1 0 1 1`), type-checks the values, rejects unknown flags, then calls the config's
`validate()`. The resolved config is saved with every run as JSON.
"""
import argparse
import dataclasses
import math
import sys
import typing
from pathlib import Path

from ground.errors import UserError
from ground.paths import REPO_ROOT


class _OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def _element_type(field_type):
    args = typing.get_args(field_type)
    return args[0] if args else str


def _parse_bool(text):
    lowered = str(text).lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected 0/1 or true/false, got {text!r}")


def _named(kind, convert):
    def parse(text):
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None

    parse.__name__ = kind
    return parse


_SCALARS = {int: _named("an integer", int), float: _named("a number", float), str: str, bool: _parse_bool}


def declaring_class(config_cls, name):
    """The class of config_cls's hierarchy that declares field `name` (the most derived, where one re-declares
    a default)."""
    return next(cls for cls in config_cls.__mro__ if name in vars(cls).get("__annotations__", {}))


def _group_title(cls):
    module = sys.modules[cls.__module__]
    where = Path(module.__file__).resolve().relative_to(REPO_ROOT) if getattr(module, "__file__", None) else None
    return f"{cls.__name__} ({where})" if where else cls.__name__


def build_parser(config_cls, description=None):
    """The flags of config_cls's fields, in one group per class that declares some (its name and file, most
    derived first): --help shows the whole config and where each part of it lives."""
    parser = _OneLineErrorParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hints = typing.get_type_hints(config_cls)
    groups = {}
    for field in dataclasses.fields(config_cls):
        field_type = hints[field.name]
        origin = typing.get_origin(field_type)
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        # argparse formats help with %: a literal "74-77%" in a help string must be escaped
        help_text = field.metadata.get("help", " ").replace("%", "%%")
        kwargs = {"default": default, "help": help_text, "dest": field.name}
        if "choices" in field.metadata:
            kwargs["choices"] = field.metadata["choices"]
        if origin in (tuple, list):
            kwargs.update(nargs="+", type=_SCALARS[_element_type(field_type)])
        elif origin is typing.Union:  # Optional[X]: "none" clears it
            inner = [a for a in typing.get_args(field_type) if a is not type(None)][0]
            scalar = _SCALARS[inner]
            kwargs["type"] = lambda text, scalar=scalar: None if text.lower() == "none" else scalar(text)
        else:
            kwargs["type"] = _SCALARS[field_type]
        groups.setdefault(declaring_class(config_cls, field.name), []).append((field.name, kwargs))
    for owner in sorted(groups, key=config_cls.__mro__.index):
        group = parser.add_argument_group(_group_title(owner))
        for name, kwargs in groups[owner]:
            group.add_argument(f"--{name}", **kwargs)
    return parser


class Config:
    """The base of every entrypoint's config. Each class in a config's hierarchy checks its own fields only:
    `check_values` (the values alone) and `check_machine` (this machine: device, optional packages, the files
    and folders a field names). validate() and check_environment() run them along the hierarchy, base
    classes first, so no class chains to another's."""

    def _run(self, hook):
        for cls in reversed(type(self).__mro__):
            if hook in vars(cls):
                vars(cls)[hook](self)

    def validate(self):
        self._run("check_values")

    def check_environment(self):
        self._run("check_machine")


def parse_config(config_cls, argv=None, description=None):
    """Defaults of config_cls, overridden by the flags in argv; validated (`validate`: the values alone), then
    checked against this machine (`check_environment`: the device, optional packages, the files and folders
    it names). Unknown flags are an error.

    A config class with PRESETS ({name: {field: value}}) and a `preset` field takes `--preset NAME`: the
    preset's values replace the defaults, and flags given explicitly still win over both.
    """
    parser = build_parser(config_cls, description)
    presets = getattr(config_cls, "PRESETS", None)
    if presets:
        chosen, _ = parser.parse_known_args(argv)
        parser.set_defaults(**presets[chosen.preset])
    args = parser.parse_args(argv)
    values = vars(args)
    hints = typing.get_type_hints(config_cls)
    for name, value in values.items():
        if typing.get_origin(hints[name]) is tuple and value is not None:
            values[name] = tuple(value)
    config = config_cls(**values)
    check_generic_ranges(config)
    config.validate()  # values only
    if hasattr(config, "check_environment"):  # the start-up step, once every value is known to be valid
        config.check_environment()
    return config


MAX_SEED = 2**32 - 1  # numpy's and torch's seeds


def check_generic_ranges(config):
    """What holds for every config: numbers are finite, seeds are numpy seeds."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise UserError(f"--{f.name} must be a finite number, got {v}")
        if f.name.endswith("seed") and isinstance(value, int) and not 0 <= value <= MAX_SEED:
            raise UserError(f"--{f.name} must be between 0 and {MAX_SEED}, got {value}")


def config_to_dict(config):
    return dataclasses.asdict(config)


def config_from_dict(config_cls, values):
    """Rebuild a saved config; fields the class no longer has are an error, new fields keep defaults."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(values) - known
    if unknown:
        raise UserError(f"saved config has fields this version does not know: {', '.join(sorted(unknown))}")
    hints = typing.get_type_hints(config_cls)
    values = {k: tuple(v) if typing.get_origin(hints[k]) is tuple and v is not None else v for k, v in values.items()}
    return config_cls(**values)


def field(default, help, **metadata):
    """A config field with its one-line help; tuples are stored as defaults directly (immutable)."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})
