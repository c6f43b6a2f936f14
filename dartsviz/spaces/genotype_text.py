"""The reference code's genotype text, `Genotype(field=[...], ...)`, read without `eval`:
the text is parsed into a syntax tree and only string/int literals, lists, tuples and
range(a, b) are read. Each space's genotype turns the fields into its own type."""
from __future__ import annotations

import ast
from typing import Dict, Sequence


def literal(node: ast.AST, where: str, negative: bool = False):
    """A restricted AST (lists/tuples of str and int constants, range(a, b)) as values;
    with `negative`, -N too (so that the space can refuse it with its range)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)) and not isinstance(node.value, bool):
        return node.value
    if (negative and isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) is int):
        return -node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [literal(e, where, negative) for e in node.elts]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
            and not node.keywords and 1 <= len(node.args) <= 2):
        bounds = [literal(a, where, negative) for a in node.args]
        if all(isinstance(b, int) for b in bounds):
            return list(range(*bounds))
    raise ValueError(f"genotype text: unexpected {ast.unparse(node)!r} in {where}")


def parse_call(text, fields: Sequence[str], hint: str, call: str, negative: bool = False) -> Dict[str, object]:
    """The fields of `Genotype(...)` text (an optional `NAME = ` prefix is allowed), each a
    plain value. `hint` follows a syntax error, `call` says what the text must be; a field
    missing, unknown or repeated positionally is a one-line ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"genotype text must be a string, got {type(text).__name__}")
    src = text.strip()
    if "=" in src.split("(", 1)[0]:
        src = src.split("=", 1)[1].strip()
    try:
        tree = ast.parse(src, mode="eval").body
    except SyntaxError as e:
        raise ValueError(f"genotype text does not parse: {e.msg} ({hint})") from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
        raise ValueError(f"genotype text must be a call {call}")
    if len(tree.args) > len(fields):
        raise ValueError("genotype text: too many arguments")
    values = {fields[i]: literal(a, fields[i], negative) for i, a in enumerate(tree.args)}
    for kw in tree.keywords:
        if kw.arg not in fields:
            raise ValueError(f"genotype text: unknown field {kw.arg!r}; expected {', '.join(fields)}")
        values[kw.arg] = literal(kw.value, kw.arg, negative)
    missing = [f for f in fields if f not in values]
    if missing:
        raise ValueError(f"genotype text lacks {', '.join(missing)}")
    return values
