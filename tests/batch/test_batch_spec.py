"""Batch specs expand into exact, deterministically numbered job lists; jobs group by model."""
from __future__ import annotations

import json

import pytest

from nodeforge import Workflow
from nodeforge.batch import BatchSpec, BatchSpecError, SeedPolicy, expand, load_spec, parse_axis, plan_batch
from nodeforge.batch.order import JobQueue, order_jobs
from nodeforge.batch.spec import spec_path_for

from .conftest import seeded_workflow


def overrides(jobs):
    return [(j.number, j.overrides_json()) for j in jobs]


def test_grid_is_a_product_numbered_with_the_first_axis_slowest(batch_registry):
    spec = BatchSpec(seeded_workflow(), grid=[parse_axis("start.value=1,2"), parse_axis("2.seed=5..7")])
    assert overrides(expand(spec, batch_registry)) == [
        (1, {"1.value": 1.0, "2.seed": 5}), (2, {"1.value": 1.0, "2.seed": 6}), (3, {"1.value": 1.0, "2.seed": 7}),
        (4, {"1.value": 2.0, "2.seed": 5}), (5, {"1.value": 2.0, "2.seed": 6}), (6, {"1.value": 2.0, "2.seed": 7}),
    ]


def test_zip_pairs_values_and_refuses_unequal_lengths(batch_registry, tmp_path):
    (tmp_path / "values.txt").write_text("3\n\n4\n5\n")
    spec = BatchSpec(seeded_workflow(), zip=[parse_axis("1.value=@values.txt", tmp_path),
                                             parse_axis("2.seed=0..20..10")])
    assert overrides(expand(spec, batch_registry)) == [
        (1, {"1.value": 3.0, "2.seed": 0}), (2, {"1.value": 4.0, "2.seed": 10}), (3, {"1.value": 5.0, "2.seed": 20})]
    spec.zip.append(parse_axis("2.seed=1,2"))
    with pytest.raises(BatchSpecError, match="same number of values"):
        expand(spec, batch_registry)


def test_a_grid_a_zip_and_a_count_expand_to_this_exact_job_list(batch_registry, tmp_path):
    """The whole list, written out by hand: the grid axis slowest, then the zip (its axes move
    together), then the count (increment adds the repeat's index to the zipped seed)."""
    spec = BatchSpec(seeded_workflow(), grid=[parse_axis("start.value=1,2")],
                     zip=[parse_axis("2.seed=5,9"), parse_axis("3.prefix=a,b")], count=2,
                     seed_policy=SeedPolicy.INCREMENT)
    expected = [
        (1, {"1.value": 1.0, "2.seed": 5, "3.prefix": "a"}, (0, 0, 0)),
        (2, {"1.value": 1.0, "2.seed": 6, "3.prefix": "a"}, (0, 0, 1)),
        (3, {"1.value": 1.0, "2.seed": 9, "3.prefix": "b"}, (0, 1, 0)),
        (4, {"1.value": 1.0, "2.seed": 10, "3.prefix": "b"}, (0, 1, 1)),
        (5, {"1.value": 2.0, "2.seed": 5, "3.prefix": "a"}, (1, 0, 0)),
        (6, {"1.value": 2.0, "2.seed": 6, "3.prefix": "a"}, (1, 0, 1)),
        (7, {"1.value": 2.0, "2.seed": 9, "3.prefix": "b"}, (1, 1, 0)),
        (8, {"1.value": 2.0, "2.seed": 10, "3.prefix": "b"}, (1, 1, 1)),
    ]
    assert [(j.number, j.overrides_json(), j.coords) for j in expand(spec, batch_registry)] == expected
    # The same spec written to a file and read back expands to the same list.
    (tmp_path / "spec.json").write_text(spec.dumps(embed_workflow=True))
    again = load_spec(tmp_path / "spec.json")
    assert [(j.number, j.overrides_json(), j.coords) for j in expand(again, batch_registry)] == expected


@pytest.mark.parametrize("policy, seeds", [
    ("fixed", [10, 10, 10]), ("increment", [10, 11, 12])])
def test_count_changes_the_seed_by_policy(batch_registry, policy, seeds):
    spec = BatchSpec(seeded_workflow(), count=3, seed_policy=SeedPolicy(policy))
    assert [j.overrides_json().get("2.seed", 10) for j in expand(spec, batch_registry)] == seeds


def test_random_seeds_are_drawn_from_the_stored_random_seed(batch_registry):
    spec = BatchSpec(seeded_workflow(), grid=[parse_axis("1.value=1,2")], count=3,
                     seed_policy=SeedPolicy.RANDOM, random_seed=1234)
    first = [j.overrides_json()["2.seed"] for j in expand(spec, batch_registry)]
    again = [j.overrides_json()["2.seed"] for j in expand(spec, batch_registry)]
    assert first == again and len(set(first[:3])) == 3
    assert first[:3] == first[3:]          # each grid cell gets the same three draws
    spec.random_seed = 99
    assert [j.overrides_json()["2.seed"] for j in expand(spec, batch_registry)] != first


def test_seed_policy_without_a_seed_param_is_a_clear_error(batch_registry):
    wf = Workflow()
    wf.add("Number", {"value": 1.0})
    wf.add("WriteText", {}, {"value": ("1", "value")})
    with pytest.raises(BatchSpecError, match="needs a node with a seed"):
        expand(BatchSpec(wf, count=2, seed_policy=SeedPolicy.INCREMENT), batch_registry)


@pytest.mark.parametrize("text, message", [
    ("2.seed", "expected ID.param=VALUES"), ("9.seed=1,2", "no node with id or unique title '9'"),
    ("2.steps=1,2", "has no param 'steps'"), ("2.seed=1,x", "expected a whole number"),
    ("2.seed=5..1..1", "is empty"), ("1.value=@missing.txt", "does not exist"), ("1.value=1,,2", "empty value")])
def test_bad_axes_name_the_problem(batch_registry, tmp_path, text, message):
    with pytest.raises(BatchSpecError, match=message):
        expand(BatchSpec(seeded_workflow(), grid=[parse_axis(text, tmp_path)]), batch_registry)


def test_spec_file_beside_the_workflow_round_trips(batch_registry, tmp_path):
    from nodeforge import save_workflow

    wf_path = save_workflow(seeded_workflow(), tmp_path / "wf.json")
    spec = BatchSpec(seeded_workflow(), grid=[parse_axis("2.seed=1..3")], zip=[parse_axis("1.value=4,5")],
                     count=2, seed_policy=SeedPolicy.INCREMENT, workflow_path="wf.json")
    path = spec_path_for(wf_path)
    assert path.name == "wf.batch.json"
    path.write_text(spec.dumps())
    data = json.loads(path.read_text())
    assert data["workflow"] == "wf.json" and data["grid"][0] == {"target": "2.seed", "values": [1, 2, 3],
                                                                 "source": "1..3"}
    loaded = load_spec(path)
    assert overrides(expand(loaded, batch_registry)) == overrides(expand(spec, batch_registry))
    assert len(expand(loaded, batch_registry)) == 12


def models_workflow():
    wf = Workflow()
    wf.add("Model", {"checkpoint": "a"})
    wf.add("Lora", {"lora": "x"}, {"value": ("1", "value")})
    wf.add("Seeded", {"seed": 0}, {"value": ("2", "value")})
    wf.add("WriteText", {}, {"value": ("3", "value")})
    return wf


def test_jobs_are_grouped_by_checkpoint_then_lora_keeping_number_order(batch_registry):
    spec = BatchSpec(models_workflow(), grid=[parse_axis("3.seed=1..3"), parse_axis("1.checkpoint=a,b"),
                                              parse_axis("2.lora=x,y")])
    jobs = expand(spec, batch_registry)
    ordered = order_jobs(spec.workflow, jobs, batch_registry)
    keys = [(j.overrides_json()["1.checkpoint"], j.overrides_json()["2.lora"]) for j in ordered]
    assert keys == [("a", "x")] * 3 + [("a", "y")] * 3 + [("b", "x")] * 3 + [("b", "y")] * 3
    assert [j.number for j in ordered] == [1, 5, 9, 2, 6, 10, 3, 7, 11, 4, 8, 12]
    assert plan_batch(spec, batch_registry).jobs == ordered
    assert sorted(j.number for j in ordered) == list(range(1, 13))


def test_queue_gives_a_worker_jobs_of_the_model_it_has_loaded(batch_registry):
    spec = BatchSpec(models_workflow(), grid=[parse_axis("1.checkpoint=a,b"), parse_axis("3.seed=1..2")])
    queue = JobQueue(spec.workflow, plan_batch(spec, batch_registry).jobs, batch_registry)
    first = queue.take(None)
    other = queue.take(None)
    assert first.number == 1 and other.number == 2           # both of model a: first in order
    b_key = queue.key(queue._pending[0])
    third = queue.take(b_key)
    assert third.overrides_json()["1.checkpoint"] == "b"
    queue.give_back(other)                                    # its worker died: handed out first
    assert queue.take(b_key).overrides_json()["1.checkpoint"] == "b"
    assert queue.take(None) is other and len(queue) == 0 and queue.take(None) is None
