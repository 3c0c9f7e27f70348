"""Masks from a text prompt (nodes/segment.py) on tiny Grounding DINO and Segment Anything models built from configs
(random weights): DINO's boxes become pixel corners and are kept above the threshold as the pack keeps them, SAM's
mask of several boxes is the union of its masks of each box at the image's own size, the image is black outside
the mask, and a graph of the three nodes validates and runs from model folders."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nodeforge import Engine, Workflow
from nodeforge.core.models import ModelPaths
from nodes import segment

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "person", "cat", "a", "dog"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from transformers import (BertConfig, BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessor, GroundingDinoProcessor, SamConfig,
                              SamMaskDecoderConfig, SamModel, SamProcessor, SamPromptEncoderConfig,
                              SamVisionConfig, SwinConfig)

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    dino_dir, sam_dir = root / "grounding-dino" / "tiny-dino", root / "sams" / "tiny-sam"
    dino_dir.mkdir(parents=True)
    swin = SwinConfig(embed_dim=8, depths=[1, 1], num_heads=[1, 1], window_size=4, image_size=64,
                      out_features=["stage1", "stage2"])
    bert = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64)
    dino = GroundingDinoForObjectDetection(GroundingDinoConfig(
        backbone_config=swin, text_config=bert, d_model=32, encoder_layers=1, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=10,
        num_feature_levels=2, encoder_n_points=2, decoder_n_points=2, max_text_len=32))
    (dino_dir / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    processor = GroundingDinoProcessor(GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}),
                                       BertTokenizer(str(dino_dir / "vocab.txt")))
    dino.save_pretrained(dino_dir)
    processor.save_pretrained(dino_dir)
    sam = SamModel(SamConfig(
        vision_config=SamVisionConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=64,
                                      patch_size=16, output_channels=8, mlp_dim=32, global_attn_indexes=[0],
                                      window_size=2, num_pos_feats=4),
        prompt_encoder_config=SamPromptEncoderConfig(hidden_size=8, image_size=64, patch_size=16, mask_input_channels=4),
        mask_decoder_config=SamMaskDecoderConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, mlp_dim=16,
                                                 iou_head_hidden_dim=8)))
    sam.save_pretrained(sam_dir)
    from transformers import SamImageProcessor

    SamProcessor(SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
                                   mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16})
                 ).save_pretrained(sam_dir)
    return root, dino_dir, sam_dir


@pytest.fixture(scope="module")
def models(folders):
    _root, dino_dir, sam_dir = folders
    return segment.load_detector(dino_dir, "cpu"), segment.load_segmenter(sam_dir, "cpu")


def picture(height: int = 48, width: int = 64, seed: int = 1) -> np.ndarray:
    return (torch.rand(height, width, 3, generator=torch.Generator().manual_seed(seed)) * 255).to(torch.uint8).numpy()


def test_the_caption_and_the_boxes_in_pixels_as_the_pack_makes_them():
    assert segment.caption("  A Person ") == "a person." and segment.caption("cat . dog.") == "cat . dog."
    corners = segment.box_corners(torch.tensor([[0.5, 0.5, 0.5, 0.25], [0.25, 0.75, 0.5, 0.5]]), 64, 48)
    assert corners.tolist() == [[16.0, 18.0, 48.0, 30.0], [0.0, 24.0, 32.0, 48.0]]


def test_dino_keeps_the_queries_whose_best_token_score_passes_the_threshold(models):
    dino, _sam = models
    image = picture()
    inputs = dino.processor(images=image, text="person.", return_tensors="pt")
    with torch.no_grad():
        out = dino.model(**inputs)
    best = out.logits.sigmoid()[0].max(dim=-1).values
    middle = float(best.median())
    kept = best > middle
    assert 0 < int(kept.sum()) < best.numel()
    expected = segment.box_corners(out.pred_boxes[0][kept], 64, 48)
    assert torch.allclose(segment.detect(dino, image, "Person", middle), expected)
    assert segment.detect(dino, image, "person", 1.0).shape == (0, 4)


def test_sams_mask_of_several_boxes_is_the_union_of_each_boxs_mask_at_the_images_size(models):
    _dino, sam = models
    image = picture()
    boxes = torch.tensor([[4.0, 6.0, 30.0, 40.0], [36.0, 2.0, 60.0, 20.0]])
    union = segment.segment(sam, image, boxes)
    assert union.shape == (48, 64) and union.dtype == torch.bool
    each = [segment.segment(sam, image, boxes[i:i + 1]) for i in range(2)]
    assert torch.equal(union, each[0] | each[1])


def test_the_image_is_black_outside_the_mask_and_an_image_with_nothing_found_is_said(models):
    dino, sam = models
    images = torch.stack([torch.from_numpy(picture(seed=s)).float() / 255 for s in (1, 2)])
    said = []
    ctx = type("Ctx", (), {"warn": lambda self, message: said.append(message)})()
    out = segment.run_text_segment(ctx, images, dino, sam, "person", 0.0)
    assert out["mask"].shape == (2, 48, 64) and set(out["mask"].unique().tolist()) <= {0.0, 1.0}
    eight_bit = (images * 255).to(torch.uint8).float() / 255
    assert torch.equal(out["image"], eight_bit * out["mask"].unsqueeze(-1)) and said == []
    none = segment.run_text_segment(ctx, images, dino, sam, "person", 1.0)
    assert not none["mask"].any() and not none["image"].any()
    assert said[0].startswith("Grounding DINO found nothing it scores above 1.0 for 'person' in image 1")


def test_a_graph_of_the_three_nodes_runs_from_the_model_folders(folders, tmp_path):
    root, _dino, _sam = folders
    engine = Engine(device="cpu", output_dir=tmp_path, model_paths=ModelPaths(roots=[root], include_builtin=False))
    wf = Workflow()
    wf.add("EmptyImage", {"width": 64, "height": 48, "batch_size": 1, "color": 0x3366CC}, node_id="1")
    wf.add("GroundingDinoLoader", {"model": "tiny-dino"}, node_id="2")
    wf.add("SegmentAnythingLoader", {"model": "tiny-sam"}, node_id="3")
    wf.add("TextSegment", {"prompt": "person", "threshold": 0.0},
           {"image": ("1", "image"), "grounding_dino": ("2", "grounding_dino"), "sam": ("3", "sam")}, node_id="4")
    wf.add("MaskToImage", {}, {"mask": ("4", "mask")}, node_id="5")
    wf.add("Preview", {}, {"image": ("5", "image")}, node_id="6")
    assert engine.validate(wf) == []
    result = engine.run(wf, outputs=["4"])
    assert result.outputs["4"]["mask"].shape == (1, 48, 64)
    wf.nodes["2"].params["model"] = "missing-dino"
    [problem] = engine.validate(wf)
    assert (problem.node_id, problem.field) == ("2", "model") and "missing-dino" in problem.message
