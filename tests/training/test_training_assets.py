"""The demo-asset trainers (train-upscaler, train-latent-upscaler, train-depth, train-embedding,
train-controlnet) run end to end on tiny settings and write files the nodes load. The bundled assets'
quality is tested in tests/workflows/test_demo_assets.py."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from nodeforge.core.registry import builtin_module  # noqa: E402
from nodeforge.paths import builtin_dir  # noqa: E402
from nodeforge.training import clip_vision, data, depth, embedding, latent_upscaler, upscaler  # noqa: E402

BASE = builtin_dir("resources") / "models" / "nodeforge-shapes"


def test_upscaler_pairs_are_the_same_shapes_at_64_and_256_px():
    low, high = upscaler.pairs(3, seed=5)
    assert low.shape == (3, 3, 64, 64) and high.shape == (3, 3, 256, 256)
    # Box-filtering the 256 px truth down gives the 64 px image within anti-aliasing rounding.
    down = torch.nn.functional.avg_pool2d(high, 4)
    assert (down - low).abs().mean() < 2 / 255


def test_crops_are_centred_near_the_shapes_outline():
    low, high = upscaler.pairs(4, seed=1)
    edges = upscaler.edge_pixels(high)
    assert all(len(e) > 20 for e in edges)
    lo, hi = upscaler.crops(low, high, edges, torch.arange(4), 24, torch.Generator().manual_seed(0))
    assert lo.shape == (4, 3, 24, 24) and hi.shape == (4, 3, 96, 96)
    # Each crop holds part of the shape and part of the background.
    assert all(float(c.std(dim=(1, 2)).sum()) > 0.05 for c in lo)


def test_train_upscaler_writes_a_compact_model_the_loader_reads(tmp_path, capsys):
    out = tmp_path / "x4.safetensors"
    assert upscaler.main(["--out", str(out), "--steps", "3", "--images", "8", "--batch", "2", "--crop", "16",
                          "--held-out", "4", "--feat", "8", "--convs", "2", "--base", str(BASE),
                          "--threads", "1"]) == 0
    assert "train-upscaler [" in capsys.readouterr().err
    model = builtin_module("upscale").load_upscale_model(out, "cpu")
    assert (model.scale, model.architecture) == (4, "Real-ESRGAN Compact")
    image = torch.rand(1, 20, 24, 3)
    assert builtin_module("upscale").upscale(model, image, 512, 32).shape == (1, 80, 96, 3)


def test_latent_upscaler_pairs_are_the_demo_vaes_latents_of_the_same_shape_at_two_sizes():
    vae = latent_upscaler.load_vae(BASE)
    low, larger, measured = latent_upscaler.sides(vae)
    assert (low, larger, measured) == (16, (18, 20, 22, 24, 26, 28, 30, 32), (24, 32))   # 64 px, VAE factor 4
    [(small, big, render)] = latent_upscaler.pairs(3, 7, vae, (32,)).values()
    assert small.shape == (3, 4, 16, 16) and big.shape == (3, 4, 32, 32) and render.shape == (3, 3, 128, 128)
    # The same shape: the larger latent pooled to the smaller size is much closer to it than another shape's.
    pooled = torch.nn.functional.avg_pool2d(big, 2)
    same = (pooled - small).pow(2).mean(dim=(1, 2, 3))
    other = (pooled - small.roll(1, 0)).pow(2).mean(dim=(1, 2, 3))
    assert bool((same < 0.5 * other).all()), (same, other)


def test_train_latent_upscaler_writes_a_resizer_the_node_reads_with_the_vaes_scale(tmp_path, capsys):
    from safetensors import safe_open

    out = tmp_path / "resizer.safetensors"
    assert latent_upscaler.main(["--out", str(out), "--steps", "2", "--images", "2", "--batch", "2",
                                 "--held-out", "2", "--channels", "32", "--blocks", "2", "--base", str(BASE)]) == 0
    captured = capsys.readouterr()
    assert "train-latent-upscaler [" in captured.err and '"x1.5_latent_mse_bilinear"' in captured.out
    with safe_open(str(out), framework="pt") as f:
        assert f.metadata()["nodeforge_vae_scaling_factor"] == "0.37924"   # the demo VAE's
    resizer = builtin_module("latent_resizer").read_resizer(out, "cpu")
    assert builtin_module("latent_resizer").layout(resizer.state_dict()) == (2, 2, 32, True)
    assert resizer.vae_scale == 0.37924
    assert latent_upscaler.main(["--out", str(out), "--measure-only", "--held-out", "2", "--base", str(BASE)]) == 0
    assert '"x2_psnr_model"' in capsys.readouterr().out


def test_depth_targets_are_the_scenes_inverse_depth_wall_one_and_larger_shapes_nearer():
    images, targets, samples = depth.dataset(6, seed=3)
    assert images.shape == (6, 3, 64, 64) and targets.shape == (6, 64, 64)
    for target, sample in zip(targets, samples):
        corners = target[[0, 0, -1, -1], [0, -1, 0, -1]]
        assert torch.allclose(corners, torch.ones(4))                        # the wall, at distance 8
        centre = target[round(sample.centre[1]), round(sample.centre[0])]
        if sample.shape != "crescent":                                      # a crescent's centre is bitten out
            assert float(centre) == pytest.approx(sample.radius / 8, abs=1e-5)  # 8 / (64 / r)
        assert float(target.max()) == pytest.approx(sample.radius / 8, abs=1e-5)
        assert float(target.min()) == pytest.approx(1.0, abs=1e-6)


def test_train_depth_writes_a_folder_the_depth_node_reads_and_measures_it(tmp_path, capsys):
    out = tmp_path / "depth-model"
    assert depth.main(["--out", str(out), "--steps", "2", "--images", "4", "--batch", "2", "--held-out", "4",
                       "--hidden", "16", "--layers", "4"]) == 0
    captured = capsys.readouterr()
    assert "train-depth [" in captured.err and '"rmse_mean_map"' in captured.out
    loaded = builtin_module("depth").read_depth_model(out, "cpu")
    assert loaded.model.config.model_type == "dpt" and not loaded.metric and loaded.model.config.hidden_size == 16
    maps = builtin_module("depth").depth_map(loaded, torch.rand(1, 48, 64, 3), 96)
    assert maps.shape == (1, 96, 128, 3) and float(maps.min()) >= 0 and float(maps.max()) <= 1
    assert depth.main(["--out", str(out), "--measure-only", "--held-out", "4"]) == 0
    assert '"shape_depth_correlation"' in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depth-model"]      # no half-written folder left


@pytest.mark.parametrize("argv,message", [
    (["--out", "no-such-folder/d"], "error: train-depth: --out no-such-folder/d: no folder no-such-folder"),
    (["--out", "d", "--measure-only"], "error: train-depth: --out d holds no depth model (config.json)"),
])
def test_train_depth_says_what_is_missing_in_one_line(argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        depth.main(argv)
    assert str(exit_.value.code).startswith(message)


def test_clip_vision_captions_are_every_full_caption_and_the_labels_name_each_pictures():
    names = clip_vision.captions()
    assert len(names) == len(set(names)) == 3 * 8 * 7
    images, labels = clip_vision.dataset(5, seed=2)
    _, samples = data.generate(5, 2)
    assert images.shape == (5, 3, 64, 64) and [names[i] for i in labels] == [data.full_caption(s) for s in samples]


def test_train_clip_vision_writes_a_folder_the_clip_vision_loader_reads(tmp_path, capsys):
    out = tmp_path / "encoder"
    assert clip_vision.main(["--out", str(out), "--steps", "2", "--images", "8", "--batch", "4", "--held-out", "4",
                             "--hidden", "32", "--layers", "1", "--base", str(BASE)]) == 0
    captured = capsys.readouterr()
    assert "train-clip-vision [" in captured.err and '"chance_top1": 0.006' in captured.out
    encoder = builtin_module("ipadapter").load_clip_vision(out, "cpu")
    embeds = builtin_module("unclip").run_clip_vision_encode(None, encoder, torch.rand(2, 64, 64, 3))
    assert embeds["clip_vision_output"]["image_embeds"].shape == (2, 64)   # the demo text encoder's pooled width


def test_embedding_training_images_are_the_concept_only():
    from nodeforge.training.judge import judge

    images = embedding.concept_images(6, seed=0)
    verdicts = [judge(im) for im in images]
    assert {(v.shape, v.colour, v.background) for v in verdicts} == {("circle", "orange", "purple")}


def test_train_embedding_writes_an_a1111_file_the_prompt_reads(tmp_path):
    from safetensors import safe_open

    out = tmp_path / "sunset.safetensors"
    assert embedding.main(["--out", str(out), "--steps", "2", "--images", "4", "--batch", "2", "--vectors", "3",
                           "--seeds", "2", "--threads", "1", "--base", str(BASE)]) == 0
    with safe_open(str(out), framework="pt") as f:
        assert list(f.keys()) == ["emb_params"]
        assert f.get_tensor("emb_params").shape == (3, 64)
        assert f.metadata()["nodeforge_trainer"] == "nodeforge.training.embedding"
    emb = builtin_module("embeddings").read_embedding(out, "sunset")
    assert emb.for_width(64, "test").shape == (3, 64)


def test_controlnet_outlines_are_what_image_to_edges_makes_and_fill_to_the_shape():
    from nodeforge.training import controlnet
    from nodeforge.training.judge import mask_iou, shape_mask

    images, captions = controlnet.training_set(6, seed=3, empty_rate=0.0)
    assert all(captions) and images.shape == (6, 64, 64, 3)
    edges = controlnet.outlines(images)
    node = builtin_module("edges").run_image_to_edges(None, torch.from_numpy(images).float() / 255, 0.4, 0.8)["image"]
    assert torch.equal(edges, node[..., 0])          # the node's own output, one channel
    for image, edge in zip(images, edges.numpy() > 0.5):
        assert 40 < edge.sum() < 200                   # a one-pixel line around the shape
        assert mask_iou(controlnet.filled(edge), shape_mask(image)) > 0.8


def test_train_controlnet_writes_a_folder_the_loader_reads_and_evaluate_measures_it(tmp_path, capsys):
    from nodeforge.training import controlnet

    out = tmp_path / "outline"
    assert controlnet.main(["--out", str(out), "--images", "8", "--steps", "2", "--batch", "2", "--no-evaluate",
                            "--threads", "1", "--base", str(BASE)]) == 0
    assert "train-controlnet [" in capsys.readouterr().err
    assert {"config.json", "diffusion_pytorch_model.safetensors", "training.json"} <= {p.name for p in out.iterdir()}
    net = builtin_module("controlnet").load_controlnet(out, "cpu")
    assert net.hint_factor == 4                        # 64 px control image for a 16x16 latent
    result = controlnet.evaluate(out, BASE, cases=3, steps=2)
    assert result["cases"] == 3 and len(result["controlnet"]["ious"]) == len(result["base"]["ious"]) == 3
    assert [c["shape"] for c in result["cases_detail"]] == ["circle", "square", "triangle"]
