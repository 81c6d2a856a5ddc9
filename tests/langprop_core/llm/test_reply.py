"""Reply parsing: the fenced block that defines the function, or a ReplyError with a reason."""
from __future__ import annotations

import pytest

from langprop_core.llm.reply import ReplyError, extract_script, find_code_blocks

GOOD = "def policy(x):\n    return x + 1\n"


@pytest.mark.parametrize("fence", ["```python", "```py", "```", "```Python3", "~~~python"])
def test_accepts_python_and_bare_fences(fence):
    closing = fence[:3]
    reply = f"Here you go:\n\n{fence}\n{GOOD}{closing}\n\nThat should work."
    assert extract_script(reply, "policy") == GOOD


def test_picks_the_block_that_defines_the_function():
    reply = ("Some helper usage:\n```python\nprint(policy(3))\n```\n"
             f"The script:\n```python\nimport math\n\n{GOOD}```\nAnd a shell line:\n```bash\nls\n```\n")
    script = extract_script(reply, "policy")
    assert script.startswith("import math")
    assert "print(" not in script


def test_last_defining_block_wins():
    first = "def policy(x):\n    return 0\n"
    reply = f"Draft:\n```python\n{first}```\nFinal:\n```python\n{GOOD}```\n"
    assert extract_script(reply, "policy") == GOOD


def test_other_languages_are_ignored():
    reply = "```javascript\nfunction policy(x) { return x }\n```"
    with pytest.raises(ReplyError) as err:
        extract_script(reply, "policy")
    assert err.value.reason == "no_code"


def test_no_code():
    with pytest.raises(ReplyError) as err:
        extract_script("I cannot help with that, sorry.", "policy")
    assert err.value.reason == "no_code"
    assert "no fenced Python code block" in str(err.value)
    assert "I cannot help" in str(err.value)


def test_syntax_error_names_the_line():
    reply = "```python\ndef policy(x):\n    return (x +\n```"
    with pytest.raises(ReplyError) as err:
        extract_script(reply, "policy")
    assert err.value.reason == "syntax_error"
    assert "line" in str(err.value)


def test_broken_definition_beats_unrelated_valid_block():
    reply = "```python\nx = 1\n```\n```python\ndef policy(x)\n    return x\n```"
    with pytest.raises(ReplyError) as err:
        extract_script(reply, "policy")
    assert err.value.reason == "syntax_error"


def test_missing_function_names_it():
    reply = "```python\ndef other(x):\n    return x\n```"
    with pytest.raises(ReplyError) as err:
        extract_script(reply, "policy")
    assert err.value.reason == "missing_function"
    assert "'policy'" in str(err.value)


def test_nested_definition_does_not_count():
    reply = "```python\nclass A:\n    def policy(self, x):\n        return x\n```"
    with pytest.raises(ReplyError) as err:
        extract_script(reply, "policy")
    assert err.value.reason == "missing_function"


def test_unclosed_fence_at_end_of_a_truncated_reply():
    reply = f"```python\n{GOOD}"
    assert extract_script(reply, "policy") == GOOD


def test_reply_error_is_a_value_error():
    assert issubclass(ReplyError, ValueError)
    assert find_code_blocks("no code") == []


def test_indented_block_is_dedented():
    body = "".join("    " + line + "\n" for line in GOOD.splitlines())
    reply = f"1. The code:\n    ```python\n{body}    ```\n"
    assert extract_script(reply, "policy") == GOOD
