"""The New-run and New-study forms (issue 25 item 7, issue 23 item 5): the first field has focus on open, the
focused field is drawn apart from the others, labels are short with the full text on the help line, place-
holders are dimmed, and keys typed while the form is busy (its deletion preview computing) all land."""
from __future__ import annotations

import threading

import pytest

from conftest import wait_until
from workbench.tui import create_app

SIZE = (100, 30)


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    return tmp_path


def slow_preview_app():
    """The app with a deletion preview that waits until ``release`` is set (the form stays busy)."""
    app = create_app(start_engine=False)
    release = threading.Event()
    real = app.services.preview_deletion

    def slow(data: str, deletion: dict):
        release.wait(20)
        return real(data, deletion)

    app.services.preview_deletion = slow
    return app, release


async def open_form(pilot, key: str, screen_type):
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, screen_type))
    return pilot.app.screen


@pytest.mark.parametrize("key,first", [("ctrl+n", "model"), ("f3", "methods")])
async def test_the_first_field_has_focus_and_focus_is_seen(tmp_home, key, first):
    from screens.form_base import FormScreen

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_form(pilot, key, FormScreen)
        await wait_until(pilot, lambda: app.focused is not None)
        assert app.focused.id == first
        focused_field, other_field = app.focused.parent, screen.query_one("#data").parent
        # the whole field is drawn apart (background), its label too, not only the input's cursor
        assert focused_field.styles.background != other_field.styles.background
        label, other_label = focused_field.query_one(".field-label"), other_field.query_one(".field-label")
        assert label.styles.text_style.bold and not other_label.styles.text_style.bold
        assert app.focused.styles.background != screen.query_one("#data").styles.background


async def test_labels_are_short_and_the_focused_fields_full_text_is_the_help_line(tmp_home):
    from screens.new_run import NewRunScreen
    from screens.widgets.form import Field

    app = create_app(start_engine=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_form(pilot, "ctrl+n", NewRunScreen)
        await wait_until(pilot, lambda: bool(screen.query("#p-lr")))
        help_line = screen.query_one("#form-help")
        await wait_until(pilot, lambda: "a hub id or a local directory" in str(help_line.render()))
        for box in screen.query(Field):
            label = str(box.query_one(".field-label").render())
            assert len(label) <= 20 and "(" not in label, label  # a name, never cut mid-word
            assert box.help_text.startswith(label.split()[0])
        await pilot.press("tab")  # the data field
        await wait_until(pilot, lambda: "built-in world or FORMAT:PATH" in str(help_line.render()))
        screen.query_one("#p-lr").focus()
        await wait_until(pilot, lambda: str(help_line.render()).startswith("lr: "))


async def test_placeholders_are_dimmed_not_like_values(tmp_home):
    from screens.new_run import NewRunScreen

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_form(pilot, "ctrl+n", NewRunScreen)
        name = screen.query_one("#name")
        await wait_until(pilot, lambda: name.size.width > 0)
        placeholder = name.get_component_rich_style("input--placeholder")
        value = screen.query_one("#model").rich_style
        assert placeholder.italic and placeholder.color != value.color


async def test_keys_typed_while_the_form_is_busy_all_land(tmp_home):
    from screens.new_run import NewRunScreen

    app, release = slow_preview_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n", "end", *"-x")  # typed at once, before the form has settled
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen))
        screen = app.screen
        preview = screen.query_one("#del-preview")
        await wait_until(pilot, lambda: "computing" in str(preview.render()))
        await pilot.press(*"yz12")  # a burst while the preview's worker is busy
        assert screen.query_one("#model").value == "clip-tiny-xyz12"
        screen.query_one("#del-n").focus()
        await pilot.press("end", *"0000")  # each key restarts the preview, none is lost
        assert screen.query_one("#del-n").value == "160000"
        release.set()
        await wait_until(pilot, lambda: "training units selected" in str(preview.render())
                         or "preview:" in str(preview.render()) and "computing" not in str(preview.render()),
                         timeout=20)


async def test_study_form_keys_land_and_errors_use_the_shared_base(tmp_home):
    from screens.form_base import FormScreen
    from screens.new_run import NewRunScreen
    from screens.study_form import StudyFormScreen

    assert issubclass(NewRunScreen, FormScreen) and issubclass(StudyFormScreen, FormScreen)
    app, release = slow_preview_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3", "end", *",npo")
        await wait_until(pilot, lambda: isinstance(app.screen, StudyFormScreen))
        screen = app.screen
        assert screen.query_one("#methods").value == "retrain,ft,multidelete,npo"
        screen.query_one("#seeds").value = "one"
        await pilot.press("ctrl+s")
        error = screen.query_one("#err-seeds")
        await wait_until(pilot, lambda: error.display and "is not a whole number" in str(error.render()))
        assert screen.query_one("#seeds").has_class("-invalid") and screen.errors == {"seeds": str(error.render())}
        release.set()


def test_screen_styles_live_beside_their_screens():
    """The home, the forms and the studies list carry their styles; the shell's stylesheet names none of them."""
    from pathlib import Path

    from screens.form_base import FormScreen
    from screens.home import HomeScreen
    from screens.new_run import NewRunScreen
    from screens.studies import StudiesScreen

    shell = (Path(__file__).resolve().parent.parent / "workbench" / "workbench.tcss").read_text()
    for selector in ("#engine-status", "#filter", "#sessions", "#home-", "#nr-", "#sf-", ".field", "#params",
                     "#form", "#method-summary", "#studies,", "#studies {", "#studies-status"):
        assert selector not in shell, selector
    for screen, selector in ((HomeScreen, "#sessions"), (FormScreen, ".field:focus-within"),
                             (NewRunScreen, "#params"), (StudiesScreen, "#studies")):
        assert selector in screen.DEFAULT_CSS, (screen.__name__, selector)


async def test_a_key_before_the_form_has_focus_goes_to_the_first_field(tmp_home):
    """On a busy machine keys typed right after ctrl+n can reach the form before Textual focused its first
    field: the screen hands them to that field instead of dropping them (here: focus taken away by hand)."""
    from screens.new_run import NewRunScreen

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_form(pilot, "ctrl+n", NewRunScreen)
        model = screen.query_one("#model")
        await wait_until(pilot, lambda: screen.focused is model)
        screen.set_focus(None)
        await pilot.press("end", *"-ab")
        assert screen.focused is model and model.value == "clip-tiny-ab"


async def test_escape_asks_before_it_drops_a_filled_in_form(tmp_home):
    """Escape on a New-run form with the seed changed went back and the next ctrl+n showed seed 42 again: the
    settings were lost without a word. An untouched form still goes back at once."""
    from screens.home import HomeScreen
    from screens.new_run import NewRunScreen
    from screens.widgets.confirm import ConfirmScreen

    app = create_app(start_engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot, "ctrl+n", NewRunScreen)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        screen = await open_form(pilot, "ctrl+n", NewRunScreen)
        await wait_until(pilot, lambda: screen.watching_edits)   # the form has settled: what comes now is typed
        screen.query_one("#seed").value = "7"
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_until(pilot, lambda: app.screen is screen)
        assert screen.query_one("#seed").value == "7"
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
