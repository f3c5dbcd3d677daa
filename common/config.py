"""Config dataclasses whose fields are the command-line flags.

Fields come in groups (a Config dataclass each: the model and tasks, the schedule, the HAR data, ...), each
declared once with its checks. An entrypoint's config is composed of groups in its experiment's `config.py`
(`compose_config`): one flat dataclass whose fields are the groups' fields, with the defaults that experiment
changes, so the whole config of one entrypoint reads from one statement, and no field is declared twice.
`parse_config(cls)` turns every field into a flag (`--model_heads 1 0 1 1`), type-checks the values, rejects
unknown flags, then calls the config's `validate()`. The resolved config is saved with every run as JSON.
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
    """The field group that declares field `name` (a composed config's), else the class of config_cls's
    hierarchy that does."""
    groups = getattr(config_cls, "FIELD_GROUPS", None)
    if groups:
        return groups[name]
    return next(cls for cls in config_cls.__mro__ if name in vars(cls).get("__annotations__", {}))


def _group_order(config_cls):
    return list(getattr(config_cls, "GROUPS", None) or config_cls.__mro__)


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
    changed = getattr(config_cls, "CHANGED_DEFAULTS", {})
    if changed:  # what the experiment's config.py sets, before the groups it is composed of
        parser.epilog = (f"{_group_title(config_cls)} changes the defaults of "
                         + ", ".join(f"--{name}" for name in changed) + ".")
    for owner in sorted(groups, key=_group_order(config_cls).index):
        group = parser.add_argument_group(_group_title(owner))
        for name, kwargs in groups[owner]:
            group.add_argument(f"--{name}", **kwargs)
    return parser


CHECKS = ("check_values", "check_machine")


class Config:
    """The base of every field group and config. Each group checks its own fields only: `check_values` (the
    values alone) and `check_machine` (this machine: device, optional packages, the files and folders a field
    names). validate() and check_environment() run them group by group (a composed config's groups in
    order), so no check chains to another's."""

    def _run(self, hook):
        for cls in getattr(type(self), "GROUPS", None) or reversed(type(self).__mro__):
            if hook in vars(cls):
                vars(cls)[hook](self)

    def validate(self):
        self._run("check_values")

    def check_environment(self):
        self._run("check_machine")


def compose_config(name, module, groups, defaults=None, help=None, doc=None, **class_attributes):
    """An entrypoint's config: one flat dataclass with the fields of `groups` (Config dataclasses, each field
    declared by one group only), `defaults` {field: value} this experiment changes and `help` {field: text}
    where a field reads otherwise here (an image's mask span is a square's side). The groups' methods and
    class attributes are the config's; `class_attributes` (DEFAULT_TASKS, PRESETS) are set on it. Checks run
    group by group (Config.validate). A name no group declares, or declared twice, is an error at import."""
    defaults, help = dict(defaults or {}), dict(help or {})
    fields, owners, namespace = [], {}, {}
    for group in groups:
        hints = typing.get_type_hints(group)
        for f in dataclasses.fields(group):
            if f.name in owners:
                raise TypeError(f"{name}: {f.name} is declared by {owners[f.name].__name__} and "
                                f"{group.__name__}")
            owners[f.name] = group
            metadata = {**f.metadata, **({"help": help.pop(f.name)} if f.name in help else {})}
            fields.append((f.name, hints[f.name],
                           dataclasses.field(default=defaults.pop(f.name, f.default), metadata=metadata)))
        declared = {f.name for f in dataclasses.fields(group)}  # ClassVars (DEFAULT_TASKS) are attributes
        for attr, value in vars(group).items():
            if attr.startswith("__") or attr in CHECKS or attr in declared:
                continue
            if attr in namespace and namespace[attr] is not value:
                raise TypeError(f"{name}: {attr} is defined by two of its groups")
            namespace[attr] = value
    if defaults or help:
        raise TypeError(f"{name}: no group of it declares {', '.join(sorted({*defaults, *help}))}")
    namespace.update(class_attributes, GROUPS=tuple(groups), FIELD_GROUPS=owners,
                     CHANGED_DEFAULTS={f[0]: f[2].default for f in fields
                                       if f[2].default != owners[f[0]].__dataclass_fields__[f[0]].default})
    cls = dataclasses.make_dataclass(name, fields, bases=(Config,), namespace=namespace)
    cls.__module__ = module  # where it is composed: its --help title and pickling name that file
    cls.__doc__ = doc or f"{name}: the fields of {', '.join(g.__name__ for g in groups)}."
    return cls


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
