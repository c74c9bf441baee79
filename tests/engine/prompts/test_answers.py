"""LLM answers read the way real models write them (issue #14): unit cases from the issue's
table, then the plan CLI against the loopback chat server answering in every style."""
import json
import re

import pytest

from engine.plan import read_plan
from engine.prompts.answers import check_description, parse_list, segment

from .servers import STYLES, FakeChatServer

TENCH = ("tench", "Tinca tinca")
MARKUP = re.compile(r"[*#`<>_]|\bthink\b", re.IGNORECASE)
ASPECT_NAMES = re.compile(r"\b(foreground|background|lighting|camera angle)\b", re.IGNORECASE)


def described(answer, class_text="tench", names=TENCH):
    return [v for v in (check_description(i, class_text, names) for i in segment(answer))
            if not v.commentary]


# ------------------------------------------------------------------- the table
def test_inline_bold_labels():
    a = ("1. **Foreground:** a tench held by an angler, **Background:** a misty lake, "
         "**Lighting:** soft dawn light, **Camera Angle:** close-up shot")
    (v,) = described(a)
    assert v.text == "a tench held by an angler, a misty lake, soft dawn light, close-up shot"
    assert not v.repaired


def test_bold_label_names_and_whole_bold_lines():
    a = ("1. **Foreground**: a tench in a net\n   **Background**: a wooden pier\n"
         "   **Lighting Condition**: overcast sky\n   **Camera Angle**: high-angle shot\n"
         "**2. a tench on a plate, a kitchen table, warm lamp light, overhead shot.**")
    assert [v.text for v in described(a)] == [
        "a tench in a net, a wooden pier, overcast sky, high-angle shot",
        "a tench on a plate, a kitchen table, warm lamp light, overhead shot"]


def test_bare_numbers_with_sub_bullets_make_one_item_each():
    a = ("1.\n- Foreground: a tench in shallow water\n- Background: reeds\n"
         "- Lighting: harsh midday sun\n- Camera Angle: low-angle shot\n\n"
         "2.\n- Camera Angle: wide shot\n- Foreground: two tench and a duck\n"
         "- Lighting: golden hour\n- Background: a river bank")
    vs = described(a)
    assert [v.text for v in vs] == [
        "a tench in shallow water, reeds, harsh midday sun, low-angle shot",
        "two tench and a duck, a river bank, golden hour, wide shot"]   # the paper's order
    assert vs[1].repaired and not vs[0].repaired


def test_description_headings():
    a = ("Here are the descriptions:\n\n**Description 1:**\n* **Foreground:** a tench\n"
         "* **Background:** a pond\n* **Lighting:** dusk\n* **Camera Angle:** macro shot\n\n"
         "### Description 2\nA tench leaping, a waterfall, bright sun, long shot\n\n"
         "I hope these help!")
    assert [v.text for v in described(a)] == ["a tench, a pond, dusk, macro shot",
                                              "a tench leaping, a waterfall, bright sun, long shot"]


def test_reasoning_blocks_are_dropped():
    a = ("<think>\nThe user wants 2. Let me plan:\n1. Foreground objects\n2. Lighting\n"
         "</think>\n1. a tench by a boat, a harbor, fog, wide shot\n"
         "2. a tench in a bucket, a dock, sunset backlight, eye-level shot")
    texts = [v.text for v in described(a)]
    assert texts == ["a tench by a boat, a harbor, fog, wide shot",
                     "a tench in a bucket, a dock, sunset backlight, eye-level shot"]
    # a server that drops the opening tag; a reasoning block cut off by max_tokens
    assert [v.text for v in described("plan: 1. Foreground\n</think>\n" + a.split("</think>")[1])
            ] == texts
    assert described("1. a tench, a lake, dawn, close-up\n<think>\n1. Foreground: x") [0].text == (
        "a tench, a lake, dawn, close-up")


def test_companion_only_foregrounds_get_the_class():
    a = ("1. a fishing rod and a landing net, a misty lake, soft light, close-up shot\n"
         "2. **Foreground:** fishing gear; **Background:** a canal; **Lighting:** noon; "
         "**Camera Angle:** top view")
    vs = described(a)
    assert [v.text for v in vs] == [
        "tench with a fishing rod and a landing net, a misty lake, soft light, close-up shot",
        "tench with fishing gear, a canal, noon, top view"]
    assert all(v.class_inserted for v in vs)
    # another of the class's lemmas, a plural, other capitalisation: the class is there
    for fg in ("Tinca tinca in a net", "three tenches", "A TENCH jumping"):
        (v,) = described(f"1. {fg}, a lake, dawn, close-up")
        assert not v.class_inserted, fg
    (v,) = described("1. a tenchlike lure, a lake, dawn, close-up")   # not the word
    assert v.class_inserted


def test_meaning_in_class_text_is_what_gets_inserted():
    (v,) = described("1. a fishing rod, a lake, dawn, close-up", "crane (a large bird)",
                     ("crane",))
    assert v.text.startswith("crane (a large bird) with a fishing rod, ")


def test_unrepairable_items_are_dropped_with_a_reason():
    vs = described("1. harsh midday sun\n2. Foreground: a tench; Background: a lake\n"
                   "3. a tench, a lake")
    assert [v.text for v in vs] == [None, None, None]
    assert "fewer than four" in vs[0].reason and "lighting, camera angle" in vs[1].reason


def test_json_answers():
    objs = [{"camera_angle": "wide shot", "foreground": "a tench", "background": "a lake",
             "lighting_condition": "dawn"}]
    assert [v.text for v in described(json.dumps(objs))] == ["a tench, a lake, dawn, wide shot"]
    fenced = 'Sure:\n```json\n{"descriptions": ["a tench, a pond, noon, macro shot"]}\n```'
    assert [v.text for v in described(fenced)] == ["a tench, a pond, noon, macro shot"]


def test_markdown_table_and_horizontal_rules():
    table = ("| # | Foreground | Background | Lighting | Camera Angle |\n|---|---|---|---|---|\n"
             "| 1 | **A tench** in a net | a lake | dawn | close-up |\n"
             "| 2 | a fishing boat | a market | neon | overhead shot |")
    assert [v.text for v in described(table)] == [
        "a tench in a net, a lake, dawn, close-up",
        "tench with a fishing boat, a market, neon, overhead shot"]
    rules = ("Here are creative descriptions:\n\n---\n\n**1.**  \n- **Foreground:** A tench "
             "gliding\n- **Background:** roots\n- **Lighting Condition:** dappled sun\n"
             "- **Camera Angle:** macro\n\n---\n\nThese aim to capture variety.")
    assert [v.text for v in described(rules)] == ["a tench gliding, roots, dappled sun, macro"]


def test_plain_lines_commentary_is_not_an_item():
    a = ("Sure! Here you go:\na tench, a lake, dawn, close-up\nEnjoy!\n"
         "a tench in a net, a boat, noon, wide shot")
    assert [v.text for v in described(a)] == ["a tench, a lake, dawn, close-up",
                                              "a tench in a net, a boat, noon, wide shot"]


@pytest.mark.parametrize("text, expected", [
    ("Here are some:\n1. a, b, c, d\n2) e, f, g, h\n3. i, j, k, l\nHope this helps!",
     ["a, b, c, d", "e, f, g, h", "i, j, k, l"]),
    ("- one thing\n* two things\n\u2022 three", ["one thing", "two things", "three"]),
    ('["x, y", "z, w"]', ["x, y", "z, w"]),
    ('```json\n{"descriptions": ["p", "q"]}\n```', ["p", "q"]),
    ('[{"foreground": "dog on a sofa", "background": "living room", "lighting": "lamp light",'
     ' "camera_angle": "wide shot"}]', ["dog on a sofa, living room, lamp light, wide shot"]),
    ("1. Foreground: goldfish in a bowl\n   Background: a table\n   Lighting Condition: room light"
     "\n   Camera Angle: low-angle shot\n2. Foreground: goldfish in a pond; Background: rocks; "
     "Lighting: sunlight; Camera Angle: wide shot",
     ["goldfish in a bowl, a table, room light, low-angle shot",
      "goldfish in a pond, rocks, sunlight, wide shot"]),
    ("plain line one\nplain line two", ["plain line one", "plain line two"]),
    ("## Meanings\n1. **A bird**\n2. _a machine_\n3. `a verb`", ["A bird", "a machine", "a verb"]),
])
def test_parse_list(text, expected):
    assert parse_list(text) == expected


# ------------------------------------------------------------------- through the plan CLI
def plan_with(server, tmp_path, *extra, classes="tench,goldfish", n=20, recipe="cd"):
    from engine.cli import main

    out = tmp_path / "p.jsonl"
    rc = main(["plan", "--classes", classes, "--recipe", recipe, "--images-per-class", str(n),
               "--llm-url", server.url, "--llm-model", "m", "--llm-retries", "0",
               "--out", str(out), *extra])
    return rc, out


def check_prompt(prompt, names):
    """A written cd prompt: the class in the foreground, no markup or reasoning, four aspects in
    the paper's order (the server's aspects are 'X, place n-i, light i, shot i')."""
    m = re.fullmatch(r"a photograph of (.+), (?:a misty lake|place) [\d-]+, (?:soft )?light \d+, "
                     r"(?:close-up )?shot \d+", prompt)
    assert m, prompt
    assert any(n in m.group(1) for n in names), prompt
    assert not MARKUP.search(prompt) and not ASPECT_NAMES.search(prompt), prompt


@pytest.mark.parametrize("style", STYLES)
def test_every_answer_style_writes_clean_prompts(style, tmp_path, isolated_cache, capsys):
    with FakeChatServer(style) as server:
        rc, out = plan_with(server, tmp_path)
    assert rc == 0, capsys.readouterr().err
    plan = read_plan(str(out))
    assert len(plan) == 40
    for r in plan:
        check_prompt(r.prompt, ["tench"] if r.wnid == "n01440764" else ["goldfish"])
    stats = plan.header["recipe_stats"]["cd"]
    assert set(stats) == {"n01440764", "n01443537"}
    s = stats["n01440764"]
    assert s["dropped"] == 0 and s["kept"] + s["repaired"] == s["parsed"]
    assert s["class_inserted"] == (s["parsed"] if style == "companions" else 0)
    assert s["repaired"] == (s["parsed"] if style in ("companions", "reordered") else 0)
    if style == "few":
        assert s["answers"] == 3 and s["parsed"] == 21              # asked again for the rest
    if style == "duplicates":
        assert s["answers"] == 2 and s["duplicates"] == 20
    text = capsys.readouterr().out
    assert "cd: LLM answers for 2 classes:" in text


def test_unusable_answers_are_asked_again_and_counted(tmp_path, isolated_cache, capsys):
    # answers alternate: sub-bullets-only (every item one aspect), then a good list
    with FakeChatServer("alternate") as server:
        rc, out = plan_with(server, tmp_path, classes="tench")
    assert rc == 0
    plan = read_plan(str(out))
    assert all(r.prompt.startswith("a photograph of tench number 2-") for r in plan)
    s = plan.header["recipe_stats"]["cd"]["n01440764"]
    assert (s["answers"], s["parsed"], s["dropped"], s["kept"]) == (2, 80, 60, 20)
    text = capsys.readouterr().out
    assert "60 dropped" in text and "n01440764: 2 answers" in text


@pytest.mark.parametrize("mode, quoted", [("unusable", "place 1-0"),
                                          ("refusal", "I'm sorry, but I can't help")])
def test_mostly_unusable_answers_stop_the_run_quoting_one(mode, quoted, tmp_path, isolated_cache,
                                                         capsys):
    with FakeChatServer(mode) as server:
        rc, out = plan_with(server, tmp_path, classes="tench")
    assert rc == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "unusable" in err and quoted in err and "tench" in err


def test_cd_and_sd_stats_in_the_header(tmp_path, isolated_cache):
    with FakeChatServer("companions") as server:
        from engine.cli import main

        out = tmp_path / "p.jsonl"
        assert main(["plan", "--classes", "tench", "--recipe", "cd", "--recipe", "sd",
                     "--images-per-class", "40", "--llm-url", server.url, "--llm-model", "m",
                     "--out", str(out)]) == 0
        assert len(server.requests) == 1                       # sd reused cd's answer
    plan = read_plan(str(out))
    assert set(plan.header["recipe_stats"]) == {"cd", "sd"}
    descriptions = {r.prompt.split(" of ", 1)[1] for r in plan if r.recipe == "cd"}
    assert {r.prompt.split(" of ", 1)[1] for r in plan if r.recipe == "sd"} == descriptions
