"""The Images panel as a gallery (issue 31): this session's results and a batch folder's PNGs as
thumbnails, clicked to show one; two selected and compared (slider, side by side); open, reveal,
copy, drag out and load an image's workflow."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage
from PySide6.QtTest import QTest

from nodeforge.ui.panels.image_panel import ImageView, ImageViewer
from nodeforge.ui.run.runner import RunImage
from tests.ui.helpers import chain

TIMEOUT = 30_000


def _image(color: str, w: int = 40, h: int = 30) -> QImage:
    image = QImage(w, h, QImage.Format.Format_RGB32)
    image.fill(QColor(color))
    return image


def _click(grid, row: int, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    rect = grid.visualItemRect(grid.item(row))
    QTest.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())


def _shown_colour(panel) -> QColor:
    view = panel.findChild(ImageView)
    return view.image.pixelColor(view.image.width() // 2, view.image.height() // 2)


def test_each_run_adds_a_thumbnail_newest_first_and_a_click_shows_that_image(window, qtbot):
    window.show()
    qtbot.waitExposed(window)
    solid, preview = chain(window, "SolidImage", "PreviewOut")
    for colour in ("red", "blue"):
        window.controller.set_param(solid, "color", colour)
        with qtbot.waitSignal(window.runner.runFinished, timeout=TIMEOUT):
            window.run()
    panel = window.images
    assert panel.grid.count() == 2 and panel.grid.currentRow() == 0
    assert _shown_colour(panel).blue() > 200                       # the newest, shown at once
    _click(panel.grid, 1)
    assert panel.grid.currentRow() == 1 and _shown_colour(panel).red() > 200
    QTest.mouseDClick(panel.grid.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                      panel.grid.visualItemRect(panel.grid.item(1)).center())
    viewers = [w for w in window.findChildren(ImageViewer) if w.isVisible()]
    assert viewers and viewers[-1].image.pixelColor(0, 0).red() > 200
    for viewer in viewers:
        viewer.close()


def test_two_selected_images_compare_with_a_slider_and_side_by_side(window, qtbot):
    window.show()
    qtbot.waitExposed(window)
    panel = window.images
    panel.add_images([RunImage(_image("#2050e0"), None, "1")])
    panel.add_images([RunImage(_image("#e03020"), None, "1")])
    assert not panel.compare_button.isEnabled()
    _click(panel.grid, 0)
    _click(panel.grid, 1, Qt.KeyboardModifier.ControlModifier)
    assert panel.compare_button.isEnabled()
    qtbot.mouseClick(panel.compare_button, Qt.MouseButton.LeftButton)
    dialog = panel.compare_dialog
    qtbot.waitExposed(dialog)
    view = dialog.view
    rect = view.image_rect()
    QTest.mouseClick(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(int(rect.x() + rect.width() * 0.25), int(rect.center().y())))
    assert view.split == pytest.approx(0.25, abs=0.02)
    shot = view.grab().toImage()
    y = int(rect.center().y())
    assert shot.pixelColor(int(rect.x() + rect.width() * 0.1), y).red() > 200        # first (newest): red
    assert shot.pixelColor(int(rect.x() + rect.width() * 0.6), y).blue() > 200       # second: blue
    qtbot.mouseClick(dialog.mode_button, Qt.MouseButton.LeftButton)
    shot = view.grab().toImage()
    assert shot.pixelColor(view.width() // 4, view.height() // 2).red() > 200
    assert shot.pixelColor(3 * view.width() // 4, view.height() // 2).blue() > 200
    dialog.close()


@pytest.fixture
def batch_folder(tmp_path):
    folder = tmp_path / "batch-2026"
    (folder / "sheet").mkdir(parents=True)
    workflow = {"nodeforge": 1, "nodes": {"1": {"type": "SolidImage", "params": {"color": "green"}},
                                          "2": {"type": "PreviewOut", "inputs": {"image": ["1", "image"]}}}}
    info = PngInfo()
    info.add_itxt("workflow", json.dumps(workflow))
    info.add_itxt("parameters", "a green square\nSteps: 4, Seed: 7, Size: 48x32")
    Image.new("RGB", (48, 32), (40, 200, 80)).save(folder / "job00001.png", pnginfo=info)
    Image.new("RGB", (48, 32), (200, 40, 40)).save(folder / "job00002.png")
    Image.new("RGB", (96, 32), (90, 90, 90)).save(folder / "sheet" / "contact.png")
    return folder


def test_a_batch_folder_is_listed_and_an_images_workflow_loads(window, qtbot, batch_folder, monkeypatch):
    window.show()
    qtbot.waitExposed(window)
    panel = window.images
    monkeypatch.setattr("nodeforge.ui.panels.image_panel.QFileDialog.getExistingDirectory",
                        lambda *a, **k: str(batch_folder))
    panel.source.setFocus()
    QTest.keyClick(panel.source, Qt.Key.Key_Down)                  # "Open folder…"
    assert panel.folder == batch_folder and panel.source.currentText() == "Folder: batch-2026"
    names = sorted(Path(r.path).name for r in panel.shown())
    assert names == ["contact.png", "job00001.png", "job00002.png"]
    row = next(i for i, r in enumerate(panel.shown()) if r.path.endswith("job00001.png"))
    _click(panel.grid, row)
    view = panel.findChild(ImageView)
    assert (view.image.width(), view.image.height()) == (48, 32)          # the file, not the thumbnail
    assert any("Seed: 7" in label.text() for label in panel.body.findChildren(type(panel.empty)))
    menu = panel.grid_menu(panel.shown()[row])
    load = next(a for a in menu.actions() if a.objectName() == "Load This Image's Workflow")
    assert load.isEnabled()
    other = next(r for r in panel.shown() if r.path.endswith("job00002.png"))
    assert not next(a for a in panel.grid_menu(other).actions()
                    if a.objectName() == "Load This Image's Workflow").isEnabled()
    load.trigger()
    assert sorted(n.type for n in window.model.nodes.values()) == ["PreviewOut", "SolidImage"]
    assert window.model.nodes["1"].params["color"] == "green"
    QTest.keyClick(panel.source, Qt.Key.Key_Up)
    QTest.keyClick(panel.source, Qt.Key.Key_Up)                    # back to "This session"
    assert panel.folder is None and panel.source.currentText() == "This session"


def test_open_reveal_copy_and_drag_out(window, qtbot, batch_folder, monkeypatch):
    panel = window.images
    panel.show_folder(batch_folder)
    opened = []
    monkeypatch.setattr("nodeforge.ui.panels.image_panel.QDesktopServices.openUrl",
                        lambda url: opened.append(url.toLocalFile()))
    record = next(r for r in panel.shown() if r.path.endswith("job00002.png"))
    actions = {a.objectName(): a for a in panel.grid_menu(record).actions()}
    actions["Open"].trigger()
    actions["Reveal in Folder"].trigger()
    assert opened == [record.path, str(batch_folder)]
    actions["Copy Image"].trigger()
    copied = QGuiApplication.clipboard().image()
    assert (copied.width(), copied.height()) == (48, 32) and copied.pixelColor(5, 5).red() > 150
    actions["Copy Path"].trigger()
    assert QGuiApplication.clipboard().text() == record.path
    row = panel.shown().index(record)
    data = panel.grid.mimeData([panel.grid.item(row)])
    assert [url.toLocalFile() for url in data.urls()] == [record.path] and data.hasImage()
    assert panel.grid.dragEnabled()


def test_a_preview_that_was_not_saved_offers_no_file_actions(window):
    panel = window.images
    panel.add_images([RunImage(_image("#808080"), None, "1")])
    actions = {a.objectName(): a for a in panel.grid_menu(panel.shown()[0]).actions()}
    assert not actions["Open"].isEnabled() and not actions["Reveal in Folder"].isEnabled()
    assert not actions["Load This Image's Workflow"].isEnabled() and actions["Copy Image"].isEnabled()


def test_older_saved_results_keep_a_thumbnail_and_show_the_file_when_chosen(window, qtbot, tmp_path):
    from nodeforge.ui.panels.gallery import full_image
    from nodeforge.ui.panels.image_panel import KEEP_WHOLE

    window.show()
    qtbot.waitExposed(window)
    panel = window.images
    for index in range(KEEP_WHOLE + 2):
        image = _image("#30a050" if index == 0 else "#404040", 400, 300)
        path = tmp_path / f"result_{index:05d}.png"
        image.save(str(path))
        panel.add_images([RunImage(image, str(path), "1")])
    oldest = panel.records[-1]
    assert oldest.image.width() <= 176 and panel.records[0].image.width() == 400     # memory: a thumbnail
    assert full_image(oldest).width() == 400 and full_image(oldest).pixelColor(5, 5).green() > 150
    _click(panel.grid, len(panel.records) - 1)
    assert panel.findChild(ImageView).image.width() == 400
