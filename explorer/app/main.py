"""Start the app: QApplication, settings names, an exception hook, the main window."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

APP_NAME = "Attention Explorer"
ORG = "AttentionExplorer"


def parse(argv):
    p = argparse.ArgumentParser(prog="attention-explorer", description=__doc__)
    p.add_argument("model", nargs="?", help="a Hugging Face model folder, or 'demo'")
    p.add_argument("--prompt", help="the prompt to open with")
    p.add_argument("--session", metavar="FILE", help="open a saved session (.aexp.json)")
    p.add_argument(
        "--present", action="store_true", help="start in presentation mode (full screen)"
    )
    p.add_argument(
        "--screenshot", metavar="FILE.png", help="wait for every panel, save the window, exit"
    )
    p.add_argument("--timeout", type=float, default=120, help="seconds --screenshot may wait")
    p.add_argument("--self-test", action="store_true", help="check the install headless, exit")
    return p.parse_args(argv)


def make_app(argv=None):
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(list(argv or sys.argv[:1]))
    app.setOrganizationName(ORG)
    app.setApplicationName(ORG)
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName("attention-explorer")  # the .desktop file: taskbar icon on Linux
    app.setWindowIcon(app_icon())
    return app


def app_icon():
    from PySide6.QtGui import QIcon

    from ..checkpoints.demo import resources_dir

    icon = QIcon()
    for png in sorted((resources_dir() / "icons").glob("attention-explorer-*.png")):
        icon.addFile(str(png))
    return icon


def install_excepthook(window):
    """An exception on the GUI thread shows a dialog; the app keeps running."""
    from PySide6.QtWidgets import QMessageBox

    def hook(kind, value, tb):
        text = "".join(traceback.format_exception(kind, value, tb))
        print(text, file=sys.stderr)
        if os.environ.get("QT_QPA_PLATFORM") != "offscreen":
            box = QMessageBox(
                QMessageBox.Icon.Critical, "Unexpected error", str(value), parent=window
            )
            box.setDetailedText(text)
            box.exec()

    sys.excepthook = hook


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.self_test:
        from .selftest import main as self_test

        return self_test(args)
    app = make_app()
    from ..checkpoints.demo import demo_available, resolve_model
    from .main_window import MainWindow, settings

    window = MainWindow()
    install_excepthook(window)
    model = args.model
    if model is None and not args.session:
        last = settings().value("recent/last")
        model = "demo" if demo_available() else (last if isinstance(last, str) else None)
    if model:
        window.load_model(str(resolve_model(model)), args.prompt)
    elif args.prompt:
        window.prompt.set_text(args.prompt)
    window.show()
    if args.session:
        window.sessions.open(args.session)
    if args.present:
        window.presenter.set_presentation(True)
    if args.screenshot:
        return screenshot(app, window, args.screenshot, args.timeout)
    return app.exec()


def screenshot(app, window, path: str, timeout: float) -> int:
    """Wait until every panel shows results, save a PNG of the window, exit."""
    from PySide6.QtCore import QTimer

    start = time.monotonic()
    status = {"code": 1}
    stable = {"n": 0}

    def check():
        if window.all_ready():
            stable["n"] += 1
            if stable["n"] >= 3:  # a few ticks with nothing pending: painting has settled
                app.processEvents()
                ok = window.grab().save(path)
                status["code"] = 0 if ok else 1
                if not ok:
                    print(f"cannot write {path}", file=sys.stderr)
                window.close()
                app.quit()
                return
        else:
            stable["n"] = 0
        if time.monotonic() - start > timeout:
            print(f"the panels were not ready within {timeout:.0f} s", file=sys.stderr)
            window.close()
            app.quit()
            return
        QTimer.singleShot(100, check)

    QTimer.singleShot(200, check)
    app.exec()
    return status["code"]
