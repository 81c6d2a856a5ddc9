"""Edit blocks: parsing variants, exact and whitespace-tolerant application, errors that name the block,
and the one entry point that turns an edit reply or a full-script reply into the child script."""
from __future__ import annotations

import pytest

from langprop_core.llm.edits import EDIT_INSTRUCTIONS, Edit, EditError, apply_edits, has_edits, parse_edits
from langprop_core.llm.reply import ReplyError, script_from_reply

PARENT = """\
import math


def helper(x):
    return x * 2


def policy(x):
    if x > 3:
        return helper(x)
    return 0
"""


def block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE"


def test_parses_several_blocks_with_prose_between():
    reply = ("The threshold is too high.\n\n" + block("    if x > 3:", "    if x > 1:")
             + "\n\nAnd the helper should triple:\n" + block("    return x * 2", "    return x * 3") + "\nDone.")
    assert parse_edits(reply) == [Edit("    if x > 3:", "    if x > 1:", 1),
                                  Edit("    return x * 2", "    return x * 3", 2)]


def test_parses_blocks_inside_a_fence_with_crlf_line_ends():
    reply = "Fix:\r\n```python\r\n" + block("    if x > 3:", "    if x > 1:").replace("\n", "\r\n") + "\r\n```\r\n"
    assert parse_edits(reply) == [Edit("    if x > 3:", "    if x > 1:", 1)]


def test_a_fence_inside_a_section_is_not_code():
    reply = "<<<<<<< SEARCH\n```python\n    if x > 3:\n```\n=======\n```python\n    if x > 1:\n```\n>>>>>>> REPLACE\n"
    assert parse_edits(reply) == [Edit("    if x > 3:", "    if x > 1:", 1)]


def test_empty_replace_deletes_and_multiline_sections_keep_their_lines():
    edits = parse_edits(block("import math\n\n", ""))
    assert edits == [Edit("import math\n\n", "", 1)]
    assert apply_edits(PARENT, edits) == PARENT.replace("import math\n\n\n", "")


def test_no_blocks_and_prose_mentions_are_not_edits():
    text = "I would use a <<<<<<< SEARCH block here, but the full script is simpler."
    assert not has_edits(text) and parse_edits(text) == []


@pytest.mark.parametrize("reply, why, number", [
    ("<<<<<<< SEARCH\na\n=======\nb\n", "cut off", 1),
    ("<<<<<<< SEARCH\na\n>>>>>>> REPLACE\n", "no =======", 1),
    (block("a", "b") + "\n<<<<<<< SEARCH\nc\n=======\nd\n<<<<<<< SEARCH\n", "no >>>>>>> REPLACE", 2),
])
def test_malformed_blocks_name_the_block(reply, why, number):
    with pytest.raises(EditError) as err:
        parse_edits(reply)
    assert why in str(err.value) and err.value.block == number


def test_exact_edits_apply_in_order():
    reply = block("    if x > 3:", "    if x > 1:") + "\n" + block("    if x > 1:\n        return helper(x)",
                                                                  "    if x > 1:\n        return helper(x) + 1")
    result = apply_edits(PARENT, parse_edits(reply))
    assert "    if x > 1:\n        return helper(x) + 1\n    return 0\n" in result
    assert result.endswith("return 0\n") and "x > 3" not in result


def test_whitespace_tolerant_match_keeps_the_source_indentation():
    # The model dropped the indentation and added trailing spaces; its REPLACE is shifted the same way.
    reply = block("if x > 3:   \n    return helper(x)",
                  "if x > 3 and x < 9:\n    return helper(x)\nelif x > 9:\n    return 9")
    result = apply_edits(PARENT, parse_edits(reply))
    assert ("    if x > 3 and x < 9:\n        return helper(x)\n    elif x > 9:\n        return 9\n"
            "    return 0\n") in result


def test_deeper_indented_search_is_shifted_back():
    reply = block("        def helper(x):\n            return x * 2",
                  "        def helper(x):\n            return x * 4")
    assert "def helper(x):\n    return x * 4\n" in apply_edits(PARENT, parse_edits(reply))


def test_missing_search_is_an_error_naming_the_block():
    reply = block("    if x > 3:", "    if x > 1:") + "\n" + block("    return x * 5", "    return 1")
    with pytest.raises(EditError) as err:
        apply_edits(PARENT, parse_edits(reply))
    assert err.value.block == 2
    assert str(err.value).startswith("edit block 2: SEARCH matches no lines") and "return x * 5" in str(err.value)


def test_ambiguous_search_is_an_error_naming_the_block_and_the_lines():
    source = "def policy(x):\n    y = 0\n    y = 0\n    return y\n"
    with pytest.raises(EditError) as err:
        apply_edits(source, parse_edits(block("    y = 0", "    y = 1")))
    assert err.value.block == 1 and "matches 2 places" in str(err.value) and "lines 2, 3" in str(err.value)
    # ambiguous only up to whitespace: still an error, not a guess
    source = "def policy(x):\n    y = 0\n    if x:\n        y = 0\n    return y\n"
    with pytest.raises(EditError) as err:
        apply_edits(source, parse_edits(block("  y = 0", "  y = 1")))
    assert "matches 2 places of the script up to whitespace" in str(err.value)


def test_empty_search_is_an_error_unless_the_source_is_empty():
    with pytest.raises(EditError) as err:
        apply_edits(PARENT, parse_edits(block("", "def policy(x):\n    return 1")))
    assert "SEARCH is empty" in str(err.value) and err.value.block == 1
    assert apply_edits("", parse_edits(block("", "def policy(x):\n    return 1"))) == "def policy(x):\n    return 1"


def test_uneven_indentation_is_no_match():
    # a tolerant match needs one shift for all lines: the body must stay inside its `if`
    for search in ("if x > 3:\n return helper(x)", "    if x > 3:\nreturn helper(x)"):
        with pytest.raises(EditError, match="matches no lines"):
            apply_edits(PARENT, parse_edits(block(search, "pass")))


# -- the entry point ------------------------------------------------------------------------------------

def test_edit_reply_becomes_the_edited_parent():
    child = script_from_reply("Lower it.\n" + block("    if x > 3:", "    if x > 1:"), "policy", PARENT)
    assert child == PARENT.replace("x > 3", "x > 1")


def test_a_full_script_is_accepted_when_edits_were_asked():
    reply = "Rewritten:\n```python\ndef policy(x):\n    return 1\n```\n"
    assert script_from_reply(reply, "policy", PARENT) == "def policy(x):\n    return 1\n"


def test_failed_edits_fall_back_to_a_full_script_in_the_same_reply():
    reply = (block("    return 7", "    return 8")
             + "\nOr the whole thing:\n```python\ndef policy(x):\n    return 1\n```")
    assert script_from_reply(reply, "policy", PARENT) == "def policy(x):\n    return 1\n"


@pytest.mark.parametrize("reply, why", [
    (block("    return 7", "    return 8"), "edit block 1: SEARCH matches no lines"),
    (block("    if x > 3:", "    if x > 3"), "the edited script does not parse (line 9"),
    (block("def policy(x):", "def other(x):"), "no longer defines 'policy'"),
    ("<<<<<<< SEARCH\n    if x > 3:\n=======\n", "cut off"),
])
def test_edits_that_fail_are_edit_failed_with_one_line_why(reply, why):
    with pytest.raises(ReplyError) as err:
        script_from_reply(reply, "policy", PARENT)
    assert err.value.reason == "edit_failed" and why in str(err.value) and "\n" not in str(err.value)


def test_without_a_parent_edit_blocks_are_not_applied():
    with pytest.raises(ReplyError) as err:
        script_from_reply(block("", "def policy(x):\n    return 1"), "policy", None)
    assert err.value.reason == "no_code"


def test_instructions_show_the_format_they_ask_for():
    # the example in the instructions is itself one well-formed block
    assert parse_edits(EDIT_INSTRUCTIONS) == [Edit("lines copied exactly from the current script",
                                                   "the lines that replace them", 1)]


# -- the option ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["option", "environment"])
def test_reply_format_reaches_the_update_prompts_of_example_and_train(tmp_path, fake_llm_server, monkeypatch, how):
    from click.testing import CliRunner

    from langprop_driving.cli import main
    from tests.helpers.driving_records import make_dataset
    from tests.helpers.scripted_training import fence

    def respond(messages):
        text = messages[-1]["content"]
        name = "predict_speed_and_steering(scene)" if "scene" in text else "choose_action(temperature_c, rate)"
        value = "('MOVE', 0.0)" if "scene" in text else "'off'"
        return fence(f"def {name}:\n    return {value}\n")

    fake_llm_server.responder = respond
    for name, value in (("LANGPROP_LLM_BASE_URL", fake_llm_server.base_url), ("OPENAI_API_KEY", "test"),
                        ("LANGPROP_LLM_MODEL", "fake-model")):
        monkeypatch.setenv(name, value)
    chosen = ["--reply-format", "edits"] if how == "option" else []
    if how == "environment":
        monkeypatch.setenv("LANGPROP_REPLY_FORMAT", "edits")
    make_dataset(tmp_path / "work" / "data")
    runs = [["example", "--run-dir", str(tmp_path / "ex"), "--epochs", "1", "--batch-size", "64", "--in-process"],
            ["train", "--work-dir", str(tmp_path / "work"), "--route-id", "1", "--epochs", "1",
             "--batch-size", "16", "--record-stride", "1", "--sandbox", "inprocess"]]
    for args in runs:
        before = len(fake_llm_server.chat_requests)
        out = CliRunner().invoke(main, [*args, "--optimizer", "openai", "--no-progress", *chosen])
        assert out.exit_code == 0, out.output
        updates = [r["messages"][-1]["content"] for r in fake_llm_server.chat_requests[before:]
                   if "current script" in r["messages"][-1]["content"]]
        assert updates and all(EDIT_INSTRUCTIONS in text for text in updates), args[0]
    out = CliRunner().invoke(main, ["train", "--reply-format", "diff"])
    assert out.exit_code == 2 and "'diff' is not one of" in out.output


def test_every_llm_command_has_the_option():
    import click

    from langprop_driving.cli import main

    ctx = click.Context(main)
    for name in ("train", "dagger", "demo", "example"):
        params = {opt: p for p in main.get_command(ctx, name).params for opt in p.opts}
        assert params["--reply-format"].envvar == "LANGPROP_REPLY_FORMAT", name
