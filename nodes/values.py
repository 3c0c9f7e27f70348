"""Plain values that travel on wires (INT, FLOAT, STRING, BOOLEAN): an image's size, a math expression over
numbers and sizes, text joined or rewritten by a regular expression, and a node that shows any value.

The math expression is parsed with `ast` and walked over a whitelist of operators and functions: nothing is
ever handed to `eval`, names other than the inputs do not exist, and powers are capped, so an expression from a
shared file can compute numbers and nothing else.
"""
from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable

from nodeforge.core.errors import NodeError

MAX_EXPRESSION_CHARS = 1000
MAX_EXPONENT = 4000           # as ComfyUI's Math Expression caps pow()
MAX_INT_BITS = 4096           # a whole-number power whose result would be longer than this is refused
VARIABLES = ("a", "b", "c", "d")
REGEX_SECONDS = 5.0           # a regular expression still matching after this long is stopped

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}


def _power(base: Any, exponent: Any) -> Any:
    if abs(exponent) > MAX_EXPONENT:
        raise NodeError(f"expression: the exponent {exponent} is above {MAX_EXPONENT}", "expression")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1 \
            and exponent * math.log2(abs(base)) > MAX_INT_BITS:
        raise NodeError(f"expression: {base} ** {exponent} is too large a number", "expression")
    return base ** exponent


def _sum(*args: Any) -> Any:
    return sum(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else sum(args)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min, "max": max, "abs": abs, "round": round, "sum": _sum, "pow": _power, "sqrt": math.sqrt,
    "ceil": math.ceil, "floor": math.floor, "log": math.log, "log2": math.log2, "log10": math.log10,
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "int": int, "float": float,
    "iif": lambda test, yes, no: yes if test else no,       # pysssss' iif(value, truepart, falsepart)
}
_SIZES = ("width", "height", "batch_size", "count")
# KJNodes' Simple Calculator (style "KJNodes"): its functions, constants and shifts; and/or give True/False.
KJ_FUNCTIONS = ("abs", "round", "min", "max", "pow", "sqrt", "sin", "cos", "tan", "log", "log10", "exp", "floor",
                "ceil")
_KJ_EXTRA: dict[str, Callable[..., Any]] = {"exp": math.exp}
_KJ_CONSTANTS = {"pi": math.pi, "euler": math.e, "True": True, "False": False}
_KJ_BINARY: dict[type, Callable[[Any, Any], Any]] = {ast.LShift: operator.lshift, ast.RShift: operator.rshift}


def size_of(value: Any, what: str) -> int:
    """An IMAGE's ([B, H, W, C]) or a LATENT's width, height or batch size in pixels (a latent's in image
    pixels: its `factor`, SD's 8 without one; a lazy EmptyLatent's as it was asked for)."""
    if isinstance(value, dict):
        samples = value.get("samples")
        if samples is None:
            return int(value.get({"count": "batch_size"}.get(what, what), 0))
        factor = int(value.get("factor", 8))
        shape = samples.shape
        return {"width": shape[-1] * factor, "height": shape[-2] * factor}.get(what, shape[0])
    shape = value.shape
    return int({"width": shape[2], "height": shape[1]}.get(what, shape[0]))


class _Walker:
    """Evaluates one parsed expression over the inputs' values."""

    def __init__(self, expression: str, names: dict[str, Any], kj: bool = False) -> None:
        self.expression = expression
        self.names = {**_KJ_CONSTANTS, **names} if kj else names
        self.kj = kj

    def fail(self, message: str) -> NodeError:
        return NodeError(f"expression {self.expression.strip()[:80]!r}: {message}", "expression")

    def value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, complex):
            return node.value
        if isinstance(node, ast.Name):
            return self.number(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr in _SIZES \
                and not self.kj:
            return self.size(node.value.id, node.attr)
        if isinstance(node, ast.BinOp) and self.kj and type(node.op) in _KJ_BINARY:
            return _KJ_BINARY[type(node.op)](self.value(node.left), self.value(node.right))
        if isinstance(node, ast.BinOp) and (type(node.op) in _BINARY or isinstance(node.op, ast.Pow)):
            return self.binary(node)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self.value(node.operand))
        if isinstance(node, ast.BoolOp) and self.kj:     # KJNodes: every operand worked out, all()/any()
            values = [self.value(item) for item in node.values]
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.BoolOp):      # Python's: the operand that decides (short-circuit)
            for item in node.values[:-1]:
                value = self.value(item)
                if bool(value) != isinstance(node.op, ast.And):
                    return value
            return self.value(node.values[-1])
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.IfExp) and not self.kj:
            return self.value(node.body) if self.value(node.test) else self.value(node.orelse)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.fail(f"{_shown(node)} is not allowed (numbers, {', '.join(VARIABLES)}, + - * / // % **, "
                        "comparisons, and/or/not, x if c else y, a.width/a.height of an image, and the functions "
                        f"{', '.join(FUNCTIONS)})")

    def number(self, name: str) -> Any:
        if name not in self.names:
            raise self.fail(f"unknown name {name!r}: use {', '.join(VARIABLES)} for the inputs")
        value = self.names[name]
        if value is None:
            raise self.fail(f"{name} is not connected: link a number to input {name}")
        if isinstance(value, (bool, int, float)):
            return value
        raise self.fail(f"{name} is an image or latent: use {name}.width or {name}.height")

    def size(self, name: str, what: str) -> int:
        value = self.names.get(name)
        if value is None or isinstance(value, (bool, int, float)):
            raise self.fail(f"{name}.{what}: {name} is {'not connected' if value is None else 'a number'}; "
                            f".{what} reads an image's or a latent's size")
        return size_of(value, what)

    def binary(self, node: ast.BinOp) -> Any:
        left, right = self.value(node.left), self.value(node.right)
        try:
            if isinstance(node.op, ast.Pow):
                return _power(left, right)
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise self.fail(f"division by zero ({left} {_SYMBOLS[type(node.op)]} {right})") from None
        except (OverflowError, ValueError) as exc:
            raise self.fail(f"{left} {_SYMBOLS[type(node.op)]} {right}: {exc}") from None

    def compare(self, node: ast.Compare) -> bool:
        left = self.value(node.left)
        for op, comparator in zip(node.ops, node.comparators):
            if type(op) not in _COMPARE:
                raise self.fail(f"the comparison {type(op).__name__} is not allowed")
            right = self.value(comparator)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def call(self, node: ast.Call) -> Any:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        known = KJ_FUNCTIONS if self.kj else tuple(FUNCTIONS)
        if name not in known or node.keywords:
            raise self.fail(f"the function {_shown(node.func)} is not one of {', '.join(known)}")
        args = [self.value(arg) for arg in node.args]
        try:
            return {**FUNCTIONS, **_KJ_EXTRA}[name](*args)
        except NodeError:
            raise
        except (TypeError, ValueError, OverflowError, ZeroDivisionError) as exc:
            raise self.fail(f"{name}({', '.join(map(str, args))}): {exc}") from None


def _shown(node: ast.AST) -> str:
    try:
        return repr(ast.unparse(node)[:40])
    except Exception:   # pragma: no cover - unparse handles every parsed node
        return type(node).__name__


def evaluate(expression: str, names: dict[str, Any], kj: bool = False) -> Any:
    """The expression's value over `names` (numbers, images, latents), or NodeError naming what is wrong; `kj`:
    KJNodes' Simple Calculator's language (its functions, pi/euler/True/False, << >>, and/or as True/False)."""
    text = expression.replace("\r", " ").replace("\n", " ").strip()
    if not text:
        raise NodeError("expression: it is empty; write one such as a * 2 + b", "expression")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise NodeError(f"expression: {len(text)} characters is more than {MAX_EXPRESSION_CHARS}", "expression")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise NodeError(f"expression {text[:80]!r} is not a valid expression ({exc.msg}, column "
                        f"{exc.offset})", "expression") from None
    try:
        result = _Walker(text, names, kj).value(tree.body)
    except RecursionError:
        raise NodeError(f"expression {text[:80]!r} is nested too deeply", "expression") from None
    if not isinstance(result, (bool, int, float)):
        raise NodeError(f"expression {text[:80]!r} gives {type(result).__name__}, not a number", "expression")
    return result


def run_math_expression(ctx: Any, expression: str, style: str, a: Any = None, b: Any = None, c: Any = None,
                        d: Any = None) -> dict[str, Any]:
    """The expression's value as a FLOAT, an INT and a BOOLEAN. Style "ComfyUI" (its Math Expression, pysssss'):
    the INT is cut towards 0, an unconnected input used is an error and a value that is no finite number is
    refused; "essentials" (its Simple Math): unconnected inputs are 0.0, NaN is 0 and the INT is rounded half to
    even (Python's round)."""
    names = {"a": a, "b": b, "c": c, "d": d}
    if style == "KJNodes":
        return _kj_calculator(ctx, expression, names)
    if style == "essentials":
        names = {key: 0.0 if value is None else value for key, value in names.items()}
    result = evaluate(expression, names)
    try:
        value = float(result)
    except OverflowError:
        raise NodeError(f"expression {expression.strip()[:80]!r} gives a number too large for a FLOAT",
                        "expression") from None
    if math.isnan(value) and style == "essentials":
        value = result = 0.0
    if not math.isfinite(value):
        raise NodeError(f"expression {expression.strip()[:80]!r} gives {value}, which is no number a node can take",
                        "expression")
    whole = round(result) if style == "essentials" else int(result)
    return {"float": value, "int": int(whole), "bool": bool(result)}


def _kj_calculator(ctx: Any, expression: str, names: dict[str, Any]) -> dict[str, Any]:
    """KJNodes' SimpleCalculatorKJ: float(), int() (cut towards 0) and bool() of the value; anything that fails
    (an unconnected input used, a name or function it lacks, a division by zero, int of inf or NaN) gives
    0.0, 0 and False, said in a warning (KJNodes logs it)."""
    try:
        result = evaluate(expression, {k: v for k, v in names.items() if v is not None}, kj=True)
        return {"float": float(result), "int": int(result), "bool": bool(result)}
    except (NodeError, ArithmeticError, ValueError, TypeError) as exc:
        ctx.warn(f"{exc}; giving 0, as KJNodes' Simple Calculator does on an error")
        return {"float": 0.0, "int": 0, "bool": False}


def run_image_size(ctx: Any, image: Any) -> dict[str, Any]:
    """An image batch's width, height and count ([B, H, W, C])."""
    batch, height, width = (int(n) for n in image.shape[:3])
    return {"width": width, "height": height, "batch_size": batch}


def run_join_text(ctx: Any, string_a: str, string_b: str, delimiter: str) -> dict[str, Any]:
    """ComfyUI's StringConcatenate: string_a, the delimiter, string_b."""
    return {"string": delimiter.join((string_a, string_b))}


def run_regex_replace(ctx: Any, string: str, regex_pattern: str, replace: str, case_insensitive: bool,
                      multiline: bool, dotall: bool, count: int) -> dict[str, Any]:
    """ComfyUI's RegexReplace: Python's re.sub (\\1 or \\g<name> in `replace` are the groups), `count`
    replacements at most (0: all), with the flags asked for. Run by the `regex` module (installed with
    transformers) in its re-compatible mode, which can stop a pattern from a shared file that would
    backtrack for hours (re cannot, and it would hold the whole app)."""
    import regex

    flags = regex.VERSION0 | (regex.IGNORECASE if case_insensitive else 0) | \
        (regex.MULTILINE if multiline else 0) | (regex.DOTALL if dotall else 0)
    try:
        pattern = regex.compile(regex_pattern, flags)
    except regex.error as exc:
        raise NodeError(f"regex_pattern {regex_pattern[:60]!r} is not a regular expression: {exc}",
                        "regex_pattern") from None
    try:
        return {"string": pattern.sub(replace, string, count=count, timeout=REGEX_SECONDS)}
    except TimeoutError:
        raise NodeError(f"regex_pattern {regex_pattern[:60]!r} was still matching after {REGEX_SECONDS:g} s on "
                        f"a text of {len(string)} characters (nested repeats such as (a|aa)+ can take forever); "
                        "simplify the pattern", "regex_pattern") from None
    except (regex.error, IndexError) as exc:
        raise NodeError(f"replace {replace[:60]!r}: {exc} (write a backslash as \\\\)", "replace") from None


def shown(value: Any) -> str:
    """A value as text for a person: numbers and text as they are, an image or latent by its size."""
    if isinstance(value, str):
        return value
    if hasattr(value, "shape"):
        shape = list(value.shape)
        if len(shape) == 4 and shape[-1] in (1, 3, 4):       # IMAGE: [B, H, W, C]
            return f"image {shape[2]}x{shape[1]}, batch {shape[0]}"
        if len(shape) == 3:                                   # MASK: [B, H, W]
            return f"mask {shape[2]}x{shape[1]}, batch {shape[0]}"
        return f"{type(value).__name__} of shape {shape}"
    if isinstance(value, dict) and "samples" in value:
        return f"latent {size_of(value, 'width')}x{size_of(value, 'height')}, batch {size_of(value, 'batch_size')}"
    return str(value)


def run_switch(ctx: Any, switch: bool, on_false: Any = None, on_true: Any = None) -> dict[str, Any]:
    """ComfyUI's ComfySwitchNode: on_true if switch else on_false; with one input linked, that one."""
    if on_false is None and on_true is None:
        raise NodeError("neither on_false nor on_true is linked; link the values to choose from", field="on_false")
    if on_true is None:
        return {"output": on_false}
    if on_false is None:
        return {"output": on_true}
    return {"output": on_true if switch else on_false}


def run_show_value(ctx: Any, value: Any) -> dict[str, Any]:
    """Show what arrives (the text is the node's output: `nodeforge run` prints it)."""
    return {"text": shown(value)}
