"""The value nodes' declarations (torch-free; run functions in nodes/values.py): nodes whose outputs are plain
INT, FLOAT, STRING or BOOLEAN values, which feed another node's params through a wire (an image's size into
Empty Latent's width), and a node that shows any value."""
from __future__ import annotations

from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import PortType

from .declare import lazy

IMAGE = PortType.IMAGE.value
INT, FLOAT, STRING, BOOLEAN = (PortType.INT.value, PortType.FLOAT.value, PortType.STRING.value,
                               PortType.BOOLEAN.value)
_ANY_NUMBER = ("a number (INT, FLOAT or BOOLEAN), or an image or latent whose size {name}.width, {name}.height "
               "and {name}.batch_size read")

VALUE_NODES: list[NodeSpec] = [
    NodeSpec(
        "GetImageSize", "utilities", lazy("values", "run_image_size"),
        inputs=(Input("image", IMAGE, description="the images to measure"),),
        outputs=(Output("width", INT, description="the images' width in pixels"),
                 Output("height", INT, description="the images' height in pixels"),
                 Output("batch_size", INT, description="how many images the batch holds")),
        description="The width, height and count of an image batch, as whole numbers that can feed another node's "
                    "settings (ComfyUI's Get Image Size).",
        display_name="Get Image Size"),
    NodeSpec(
        "MathExpression", "utilities", lazy("values", "run_math_expression"),
        inputs=tuple(Input(name, "*", optional=True, description=_ANY_NUMBER.format(name=name))
                     for name in ("a", "b", "c", "d")),
        params=(Param.string("expression", "a + b",
                             description="numbers, a b c d, + - * / // % **, comparisons, and/or/not, "
                                         "x if test else y, a.width/a.height of an image, and min max abs round sum "
                                         "pow sqrt ceil floor log log2 log10 sin cos tan int float iif"),
                Param.choice("style", ("ComfyUI", "essentials", "KJNodes"), default="ComfyUI",
                             description="ComfyUI (its Math Expression, pysssss'): the INT output is cut towards 0 "
                                         "and an unconnected input used is an error; essentials (its Simple Math): "
                                         "the INT is rounded half to even, unconnected inputs and NaN read as 0; "
                                         "KJNodes (its Simple Calculator): its functions, pi, euler, << >>, and/or "
                                         "as True/False, the INT cut towards 0, any error giving 0")),
        outputs=(Output("float", FLOAT, description="the value"),
                 Output("int", INT, description="the value as a whole number (see style)"),
                 Output("bool", BOOLEAN, description="whether the value is not 0")),
        description="Work out a number from other nodes' numbers and image sizes (parsed safely: only the listed "
                    "operators and functions exist).",
        display_name="Math Expression"),
    NodeSpec(
        "JoinText", "utilities", lazy("values", "run_join_text"),
        params=(Param.string("string_a", "", multiline=True, description="the first text"),
                Param.string("string_b", "", multiline=True, description="the text after it"),
                Param.string("delimiter", "", description="what goes between them")),
        outputs=(Output("string", STRING, description="string_a, the delimiter, string_b"),),
        description="Join two texts with a delimiter between them (ComfyUI's Concatenate); link a STRING output "
                    "to either text.",
        display_name="Join Text"),
    NodeSpec(
        "RegexReplace", "utilities", lazy("values", "run_regex_replace"),
        params=(Param.string("string", "", multiline=True, description="the text to change"),
                Param.string("regex_pattern", "", multiline=True,
                             description="a Python regular expression: what to find"),
                Param.string("replace", "", multiline=True,
                             description="what each match becomes (\\1 or \\g<name> insert a group)"),
                Param.bool("case_insensitive", True, description="match upper and lower case alike"),
                Param.bool("multiline", False, description="^ and $ match at each line's start and end"),
                Param.bool("dotall", False, description=". matches newlines too"),
                Param.int("count", 0, min=0, max=100, description="replace at most this many matches (0: all)")),
        outputs=(Output("string", STRING, description="the text with the matches replaced"),),
        description="Find and replace text with a regular expression (ComfyUI's Regex Replace).",
        display_name="Regex Replace"),
    NodeSpec(
        "ShowValue", "utilities", lazy("values", "run_show_value"),
        inputs=(Input("value", "*", description="any value: a number, a text, an image (shown by its size)"),),
        output_node=True,
        description="Show a value as text (`nodeforge run` prints it).",
        display_name="Show Value"),
    NodeSpec(
        "Switch", "utilities", lazy("values", "run_switch"),
        inputs=(Input("on_false", "*", optional=True, description="what passes on while switch is off"),
                Input("on_true", "*", optional=True, description="what passes on while switch is on")),
        params=(Param.bool("switch", False, description="which input passes on (a BOOLEAN wire may set it)"),),
        outputs=(Output("output", "*", description="on_true if switch is on, else on_false (the one linked when "
                                                   "only one is)"),),
        description="Pass on one of two values by a switch (ComfyUI's Switch). Both linked inputs are worked out "
                    "(ComfyUI works out only the chosen one): the value is the same.",
        display_name="Switch"),
]
