"""The driving model's prompts, task and seeds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driving.labels import parse_policy_output
from driving.scene import ACTOR_KEYS, SCENE_KEYS
from langprop_core.policy import Policy
from langprop_core.sandbox import load_function
from langprop_driving.model.module import make_driving_module
from langprop_driving.model.seed_policy import FUNCTION_NAME, read_seed_source, seed_path
from langprop_driving.model.task import driving_task, preprocess_record
from tests.helpers.driving_records import label, make_scene, vehicle


def test_setup_prompt_describes_every_scene_key_and_the_output():
    module = make_driving_module()
    messages = module.setup_prompt()
    assert [m.role for m in messages] == ["system", "user"]
    text = messages[-1].content
    for spec in (*SCENE_KEYS, *ACTOR_KEYS):
        assert f"`{spec.name}`" in text, spec.name
    assert '"MOVE" (6.0 m/s)' in text and '"STOP"' in text
    assert "positive turns to the RIGHT" in text
    assert f"def {FUNCTION_NAME}(scene" in text


def test_update_prompt_shows_code_score_and_cases():
    module = make_driving_module()
    policy = Policy.from_source(read_seed_source("naive"), FUNCTION_NAME)
    messages = module.update_prompt(policy, -0.25, ["CASE-ONE", "CASE-TWO"])
    text = messages[-1].content
    assert "-0.250" in text
    assert "CASE-ONE" in text and "### Case 2" in text
    assert "def predict_speed_and_steering(scene):" in text
    # no score yet still renders
    assert "not scored yet" in module.update_prompt(policy, None, [])[-1].content


def test_update_prompt_asks_for_edits_or_the_complete_script():
    from langprop_core.llm.edits import EDIT_INSTRUCTIONS

    module = make_driving_module()
    policy = Policy.from_source(read_seed_source("naive"), FUNCTION_NAME)
    rewrite = module.update_prompt(policy, 0.5, ["CASE"])[-1].content
    edits = module.update_prompt(policy, 0.5, ["CASE"], reply_format="edits")[-1].content
    assert "holding the complete script" in rewrite and "SEARCH" not in rewrite
    # the template shows the instructions once, in place of the ask for a complete script, with the rules
    assert edits.count(EDIT_INSTRUCTIONS) == 1 and "holding the complete script" not in edits
    assert "then write the edits." in edits and "Never\nraise" in edits


@pytest.mark.parametrize("name", ["naive", "cautious"])
def test_bundled_seeds_return_valid_outputs(name):
    fn = load_function(read_seed_source(name), FUNCTION_NAME, name)
    scene = make_scene(4.0, red_m=3.0, target_angle_deg=-30.0, vehicles={5: vehicle(5.0, 0.2)})
    action = parse_policy_output(fn(scene))
    assert action.steering_deg == pytest.approx(-30.0, abs=1e-6)


def test_naive_seed_ignores_a_red_light_and_cautious_stops():
    naive = load_function(read_seed_source("naive"), FUNCTION_NAME, "naive")
    cautious = load_function(read_seed_source("cautious"), FUNCTION_NAME, "cautious")
    scene = make_scene(5.0, red_m=4.0)
    assert naive(scene)[0] == "MOVE"
    assert cautious(scene)[0] == "STOP"


def test_read_seed_source_names_the_problem(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_text("def other(scene):\n    return 'MOVE', 0\n")
    with pytest.raises(ValueError, match="defines no top-level function 'predict_speed_and_steering'"):
        read_seed_source(bad)
    broken = tmp_path / "broken.py"
    broken.write_text("def predict_speed_and_steering(scene)\n")
    with pytest.raises(ValueError, match=r"broken.py:1"):
        read_seed_source(broken)
    with pytest.raises(FileNotFoundError, match="known: cautious, naive"):
        seed_path("nonexistent")


def test_task_preprocess_accepts_json_form_and_scores():
    from driving.dataset import SceneRecord

    rec = SceneRecord(scene=make_scene(3.0), label=label("MOVE", 0.0), meta={"route_id": "1"})
    jsonable = rec.to_jsonable()
    args, target = preprocess_record(jsonable)
    assert isinstance(args[0]["ego_location_world_coord"], np.ndarray)
    assert 5 not in args[0]["vehicles"]
    task = driving_task()
    assert task.objective(("MOVE", 0.0), target, args) == 1.0
    with pytest.raises(Exception):
        task.output_check(("FAST", 0.0))
    text = task.describe_case(args, target, ("STOP", 0.0))
    assert "Expert: ('MOVE', 0.0)" in text
