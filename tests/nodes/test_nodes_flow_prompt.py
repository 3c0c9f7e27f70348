"""The transformer families take one plain prompt per side; what they refuse says which family,
what was wrong and what to do, in one line."""
import pytest

pytest.importorskip("torch")

from nodeforge.core.errors import NodeError  # noqa: E402
from nodes.families.flow import one_prompt  # noqa: E402

SD3 = ("area", "area_fraction", "timestep_range", "mask")


def test_one_plain_prompt_of_the_family_is_taken_as_it_is():
    entry = {"family": "sd3", "embeds": object(), "pooled": object()}
    assert one_prompt([entry], "positive", "sd3", "SD3", SD3) is entry


@pytest.mark.parametrize("conditioning, words", [
    ([{"family": "sd3", "pooled": 1}, {"family": "sd3", "pooled": 1}], "got 2 entries"),
    ([{"family": "sd3", "pooled": 1, "mask": 1}], "area/timestep range/mask"),
    ([{"family": "sd1", "pooled": None}], "encoded for a sd1 model; encode it with this SD3 model's CLIP"),
    ([{"family": "sd3", "pooled": None}], "encode it with this SD3 model's CLIP"),
])
def test_what_the_family_cannot_take_is_refused_in_one_line_naming_the_input(conditioning, words):
    with pytest.raises(NodeError) as err:
        one_prompt(conditioning, "negative", "sd3", "SD3", SD3)
    assert words in str(err.value) and "\n" not in str(err.value) and err.value.field == "negative"


def test_a_family_without_pooled_projections_takes_a_prompt_without_one():
    entry = {"family": "zimage", "embeds": object()}
    assert one_prompt(entry, "positive", "zimage", "Z-Image", ("control",), pooled=False) is entry
    with pytest.raises(NodeError, match="ControlNet"):
        one_prompt({**entry, "control": ()}, "positive", "zimage", "Z-Image", ("control",), pooled=False)
