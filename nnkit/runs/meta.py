"""The one validation point for a run's ``meta.json``: shape checked with a JSON Schema (jsonschema).

Everything that reads a run (CLI, dashboard, report, model loading) reads the meta of a run that passed
this check, so it can index the fields below without guarding each access. A run whose meta fails is
"broken": ``RunStore.list`` skips it with a warning and ``RunStore.get`` of it is a one-line NnkitError.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

_NUMBER = {"type": "number"}
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_INT = {"type": "integer", "minimum": 0}
_STR_OR_NULL = {"type": ["string", "null"]}

# A classifier's defence (nnkit.training.config.TrainConfig.defence): null or absent for standard training (runs
# written before adversarial training existed have no key).
_DEFENCE = {
    "type": ["object", "null"],
    "required": ["kind", "eps"],
    "properties": {
        "kind": {"enum": ["fgsm", "pgd"]}, "eps": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "steps": {"type": "integer", "minimum": 1}, "alpha": {"type": "number", "exclusiveMinimum": 0},
        "norm": {"type": "string"}, "random_start": {"type": "boolean"},
        "clean_epochs": {"type": "integer", "minimum": 0},
    },
}

_DATASET = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"}, "opts": {"type": ["object", "null"]}, "root": _STR_OR_NULL,
        "class_names": {"type": "array", "items": {"type": "string"}}, "info": {"type": ["object", "null"]},
        "n_train": _INT, "n_val": _INT, "n_test": _INT,
    },
}

# Fields every kind shares; unknown extra fields are allowed (newer writers may add some).
_BASE = {
    "type": "object",
    "required": ["status", "kind"],
    "properties": {
        "run_id": {"type": "string"}, "status": {"const": "complete"}, "kind": {"type": "string", "minLength": 1},
        "name": _STR_OR_NULL, "created": _STR_OR_NULL, "seed": {"type": ["integer", "null"]},
        "device": _STR_OR_NULL, "versions": {"type": "object"}, "dataset": _DATASET,
        "model": {"type": "object", "properties": {"name": {"type": "string"}}},
        "test_accuracy": _NUMBER_OR_NULL, "seconds": _NUMBER, "epochs_run": _INT, "steps": _INT,
        "parameters": {"type": ["integer", "object"]},
    },
}

# What each kind's readers index on top of the base (the model loaders, the pages' metrics).
_KINDS = {
    "classifier": {
        "required": ["dataset", "model", "test_accuracy"],
        "properties": {
            "test_accuracy": _NUMBER, "defence": _DEFENCE,
            "model": {"type": "object", "required": ["name", "num_classes", "in_channels", "image_size"],
                      "properties": {"name": {"type": "string"}, "num_classes": {"type": "integer", "minimum": 1},
                                     "in_channels": {"type": "integer", "minimum": 1},
                                     "image_size": {"type": "integer", "minimum": 1}}},
        },
    },
    "gan": {
        "required": ["dataset", "generator", "discriminator"],
        "properties": {
            "generator": {"type": "object"}, "discriminator": {"type": "object"}, "conditional": {"type": "boolean"},
            "quality": {"type": "object", "properties": {"frechet_distance": _NUMBER,
                                                         "inception_score": _NUMBER, "classes_covered": _INT}},
            "frechet_distance": {"type": "array", "items": _NUMBER},
            "judge": {"type": "object", "properties": {
                "run_id": {"type": "string"}, "test_accuracy": _NUMBER_OR_NULL,
                "real_images": {"type": "object", "properties": {"inception_score": _NUMBER}}}},
            "train_seconds": _NUMBER, "stopped_by": {"type": "string"},
        },
    },
    "style": {
        "properties": {
            "content": {"type": "string"}, "style": {"type": "string"}, "size": {"type": "array", "items": _INT},
            **{k: _NUMBER for k in ("style_loss_start", "style_loss_end", "style_loss_reduction", "content_loss_start",
                                    "content_loss_end", "gram_distance_output_style", "gram_distance_output_content",
                                    "gram_distance_content_style")},
        },
    },
}


@lru_cache(maxsize=len(_KINDS) + 1)
def _validator(kind: str | None):
    from jsonschema import Draft202012Validator

    schema = _BASE if kind not in _KINDS else {"allOf": [_BASE, {"type": "object", **_KINDS[kind]}]}
    return Draft202012Validator(schema)


def meta_problem(meta) -> str | None:
    """What is wrong with a parsed meta.json, in a few words, or None when it is well-formed.

    Args:
        meta: the parsed JSON (any type: a list or a string is a problem too).

    Returns:
        e.g. ``"model/num_classes: 'ten' is not of type 'integer'"``, or None.
    """
    if not isinstance(meta, dict):
        return f"meta.json holds a {type(meta).__name__}, not an object"
    kind = meta.get("kind")
    errors = sorted(_validator(kind if isinstance(kind, str) and kind in _KINDS else None).iter_errors(meta),
                    key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return None
    error = errors[0]
    where = "/".join(str(p) for p in error.absolute_path)
    message = error.message if len(error.message) <= 120 else error.message[:119] + "…"
    return f"{where}: {message}" if where else message


# meta.json text digest -> its problem (None: valid). A run never changes once complete, so the dashboard, which
# reads the whole store on every rerun, checks each meta once; the size bound keeps a huge store from growing it.
_VERDICTS: dict[bytes, str | None] = {}
_MAX_VERDICTS = 4096


def read_meta(path: Path) -> tuple[dict | None, str | None]:
    """Read and check ``path`` (a run's meta.json).

    Args:
        path: the meta.json file.

    Returns:
        ``(meta, None)`` when it is well-formed, else ``(None, problem)`` with the problem in a few words.
    """
    try:
        raw = path.read_bytes()
        meta = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        return None, "no meta.json"
    except OSError as exc:
        return None, f"meta.json is unreadable ({exc.strerror or type(exc).__name__})"
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"meta.json is not valid JSON ({str(exc)[:80]})"
    except RecursionError:
        return None, "meta.json is nested too deeply"
    key = hashlib.blake2b(raw, digest_size=16).digest()
    if key in _VERDICTS:
        problem = _VERDICTS[key]
    else:
        problem = meta_problem(meta)
        if len(_VERDICTS) >= _MAX_VERDICTS:
            _VERDICTS.clear()
        _VERDICTS[key] = problem
    return (None, problem) if problem else (meta, None)


# C0/C1 control characters, DEL, and Unicode format characters (bidi overrides, zero-width joiners): the ones
# that move the cursor, recolour or reorder a terminal line or hide text.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _unsafe_char(ch: str) -> bool:
    return bool(_UNSAFE.match(ch)) or unicodedata.category(ch) in ("Cf", "Zl", "Zp")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a run name (a control or invisible character), or None when it can.

    Args:
        name: the ``--name`` a user gave.

    Returns:
        A few words naming the first bad character, or None.
    """
    for i, ch in enumerate(name):
        if _unsafe_char(ch):
            return f"it contains the control character U+{ord(ch):04X} at position {i}"
    return None


def safe_text(text) -> str:
    """``text`` with control and invisible characters escaped (``\\x1b``, ``\\u202e``), safe to print.

    Args:
        text: any value (a stored run name may be anything a hostile writer put into meta.json).

    Returns:
        A printable one-line string; ordinary text, accents included, is unchanged.
    """
    text = str(text)
    if not any(_unsafe_char(ch) for ch in text):
        return text
    return "".join(ch.encode("unicode_escape").decode("ascii") if _unsafe_char(ch) else ch for ch in text)

