"""resolve_genotype: a genotype of a space from whatever a user hands in (a run directory,
a file, a paper cell's name, random[:SEED], text); text is parsed, never evaluated."""
from __future__ import annotations

import json
from pathlib import Path

from ..runs import RunDir, RunDirError


def resolve_genotype(spec, space=None):
    """A genotype of `space` (default: the convolutional one) from a run directory, a
    .json/.txt file, a paper cell's name (DARTS_V1, DARTS_V2; DARTS_RNN_V1, DARTS_RNN_V2),
    random[:SEED], or genotype text.

    Text is parsed, never evaluated. Errors are one-line ValueError/RunDirError messages.
    """
    from . import get_space                       # the registry, in the package: not a lower module
    space = get_space("cnn" if space is None else space)
    if space.holds_genotype(spec) or (not space.paper_genotypes and not isinstance(spec, (str, Path))):
        return spec                                # a genotype object of the space
    names = ", ".join(space.paper_genotypes)
    s = str(spec).strip()
    if not s:
        raise ValueError(f"empty genotype: give a run directory, {names} or genotype text")
    if s.upper() in space.paper_genotypes:
        return space.paper_genotypes[s.upper()]
    if s.lower() == "random" or s.lower().startswith("random:"):
        seed = s.split(":", 1)[1] if ":" in s else "0"
        try:
            return space.random_genotype(int(seed))
        except ValueError:
            raise ValueError(f"random genotype seed must be an integer, got {seed!r}") from None
    if s.startswith("{"):
        return _from_json(space, s)
    if "Genotype" in s and "(" in s:
        return space.parse_genotype(s)
    path = Path(s).expanduser()
    if path.is_dir():
        run_dir = RunDir(path)
        if (path / "genotype.json").is_file() or (path / "genotype.txt").is_file():
            if run_dir.space_name != space.name:
                raise RunDirError(f"{path} holds a genotype of the {run_dir.space_name} space, "
                                  f"not of the {space.name} space (pass --space {run_dir.space_name})")
            return run_dir.read_genotype(space)
        raise RunDirError(f"{path} holds no genotype.json or genotype.txt (is it a dartsviz search run directory?)")
    if path.is_file():
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read genotype file {path}: {e}") from None
        try:
            return _from_json(space, text) if text.lstrip().startswith("{") else space.parse_genotype(text)
        except ValueError as e:                     # the file's name first: the user knows which one
            raise ValueError(f"{path}: {e}") from None
    if "/" in s or "\\" in s or s.endswith((".json", ".txt")) or s.startswith("."):
        raise RunDirError(f"run directory or genotype file {s} does not exist")
    try:                                           # a space's own text form (not "Genotype(...)")
        return space.parse_genotype(s)
    except ValueError as e:
        why = str(e)
    raise ValueError(f"genotype {s!r} is not a run directory, a file, {names}, "
                     f"random[:SEED] or {space.name} genotype text ({why})")


def _from_json(space, text: str):
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"genotype JSON does not parse: {e}") from None
    if not isinstance(d, dict):
        raise ValueError("genotype JSON must be an object")
    return space.genotype_from_dict(d)
