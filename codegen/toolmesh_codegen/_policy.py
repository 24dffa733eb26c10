"""What generated programs may use: one table shared by the validator, the dataflow
analysis and the sandbox runtime, so that what is checked is what is provided.
"""

from __future__ import annotations

#: Modules a program may import; each is replaced in the sandbox by a namespace
#: holding only the attributes listed here (``None``: any public attribute).
MODULE_ATTRIBUTES: dict[str, frozenset[str] | None] = {
    "toolmesh": frozenset({"call"}),
    "asyncio": frozenset({"gather", "ensure_future", "create_task"}),
    "math": None,
}

#: Builtins a program may call. Everything else in ``builtins`` is absent in the sandbox.
SAFE_BUILTINS: frozenset[str] = frozenset(
    {
        "abs", "all", "any", "bool", "chr", "dict", "divmod", "enumerate", "filter",
        "float", "frozenset", "hash", "int", "isinstance", "iter", "len", "list", "map",
        "max", "min", "next", "ord", "pow", "print", "range", "repr", "reversed", "round",
        "set", "slice", "sorted", "str", "sum", "tuple", "zip", "bytes",
        "True", "False", "None",
        "ArithmeticError", "AssertionError", "Exception", "IndexError", "KeyError",
        "LookupError", "RuntimeError", "StopIteration", "TypeError", "ValueError",
        "ZeroDivisionError",
    }
)  # fmt: skip

#: Builtins that are refused with a reason (the rest of ``builtins`` is simply unknown).
REFUSED_BUILTINS: dict[str, str] = {
    "open": "generated programs cannot touch files",
    "exec": "generated programs cannot run code from strings",
    "eval": "generated programs cannot run code from strings",
    "compile": "generated programs cannot run code from strings",
    "__import__": "import only asyncio, math or toolmesh with an import statement",
    "getattr": "access attributes by name (x.name); dynamic attribute access is not allowed",
    "setattr": "generated programs cannot set attributes",
    "delattr": "generated programs cannot delete attributes",
    "hasattr": "dynamic attribute access is not allowed",
    "globals": "generated programs cannot inspect namespaces",
    "locals": "generated programs cannot inspect namespaces",
    "vars": "generated programs cannot inspect namespaces",
    "dir": "generated programs cannot inspect namespaces",
    "type": "generated programs cannot use type objects; use isinstance()",
    "object": "generated programs cannot use type objects",
    "super": "generated programs cannot define classes",
    "input": "generated programs cannot read from a terminal",
    "breakpoint": "generated programs cannot start a debugger",
    "help": "generated programs cannot use help()",
    "memoryview": "generated programs cannot view raw memory",
    "classmethod": "generated programs cannot define classes",
    "staticmethod": "generated programs cannot define classes",
    "property": "generated programs cannot define classes",
    "exit": "return from solve() instead",
    "quit": "return from solve() instead",
}

#: Attribute names refused on any object: they reach frames, code, event loops,
#: files or format strings that can walk to them.
REFUSED_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "format", "format_map", "mro", "get_loop", "get_coro", "get_stack",
        "print_stack", "get_context", "save", "show", "im", "fp", "filename",
        "close", "send", "throw", "with_traceback", "add_done_callback", "set_result",
        "set_exception",
    }
)  # fmt: skip
REFUSED_ATTRIBUTE_PREFIXES: tuple[str, ...] = ("_", "gi_", "cr_", "ag_", "f_", "tb_", "co_")

#: Methods that never change their receiver: calling them is not a write (dataflow).
#: Any other method call is assumed to mutate the object it is called on.
PURE_METHODS: frozenset[str] = frozenset(
    {
        # str
        "capitalize", "casefold", "center", "count", "encode", "endswith", "find",
        "index", "isalnum", "isalpha", "isdigit", "islower", "isnumeric", "isspace",
        "istitle", "isupper", "join", "ljust", "lower", "lstrip", "partition",
        "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust",
        "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip",
        "swapcase", "title", "upper", "zfill", "decode", "hex",
        # dict / list / set reads
        "get", "keys", "values", "items", "copy", "union", "intersection", "difference",
        "symmetric_difference", "issubset", "issuperset", "isdisjoint",
        # PIL.Image reads (return new images or data)
        "crop", "resize", "rotate", "convert", "transpose", "getpixel", "getbbox",
        "getcolors", "getextrema", "histogram", "tobytes", "getbands", "getchannel",
        "point", "filter", "reduce", "quantize", "entropy", "getdata", "split_image",
        # math-like
        "is_integer", "bit_length", "conjugate", "as_integer_ratio",
    }
)  # fmt: skip

#: Builtins that return a value without changing their arguments or anything else.
PURE_BUILTINS: frozenset[str] = SAFE_BUILTINS - {"print", "next", "iter"}

#: Builtins whose result holds no reference to their arguments (numbers, strings,
#: booleans): assigning their result does not create an alias.
FRESH_BUILTINS: frozenset[str] = frozenset(
    {
        "abs", "all", "any", "bool", "chr", "divmod", "float", "hash", "int",
        "isinstance", "len", "ord", "pow", "repr", "round", "str", "sum", "bytes",
    }
)  # fmt: skip

#: Name of the virtual variable that orders ``print`` calls.
STDOUT = "<stdout>"


def refused_attribute(name: str) -> str | None:
    """Why ``obj.name`` is refused, or ``None`` when it is allowed."""
    if name.startswith(REFUSED_ATTRIBUTE_PREFIXES):
        return f"attribute {name!r} is not allowed (private or interpreter internals)"
    if name in REFUSED_ATTRIBUTES:
        return f"attribute {name!r} is not allowed in generated programs"
    return None
