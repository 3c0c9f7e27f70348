"""Run > Offload Models: the editor's side of the engine's `offload` setting (nodes/placement.py)."""
from __future__ import annotations


def test_the_offload_menu_sets_the_engine_and_is_remembered(qtbot, engine):
    from nodeforge.ui.main_window import MainWindow

    win = MainWindow(engine)
    win.confirm_close = False
    qtbot.addWidget(win)
    assert engine.settings["offload"] == "none" and win.acts.offload["none"].isChecked()
    run_menu = next(a.menu() for a in win.menuBar().actions() if a.text() == "&Run")
    offload = next(a.menu() for a in run_menu.actions() if a.text() == "&Offload Models")
    assert [a.text() for a in offload.actions()] == [text for _, text, _ in win.acts.OFFLOAD]

    win.acts.offload["model"].trigger()
    assert engine.settings["offload"] == "model" and win.acts.offload["model"].isChecked()
    assert not win.acts.offload["none"].isChecked()            # one choice at a time
    assert win.settings().value("offload") == "model"
    assert "Offload: model" in win.statusBar().currentMessage()

    again = MainWindow(engine.__class__(device="cpu", output_dir=engine.output_dir, registry=engine.registry))
    again.confirm_close = False
    qtbot.addWidget(again)
    assert again.engine.settings["offload"] == "model" and again.acts.offload["model"].isChecked()
    win.acts.offload["none"].trigger()
    assert win.settings().value("offload") == "none"
