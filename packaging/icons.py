"""The app icon: PNGs rendered from the SVG, and .ico / .icns files packed from the PNGs.

    python packaging/icons.py            # render resources/icons/attention-explorer-N.png
    python packaging/icons.py --check    # exit 1 when a committed PNG is missing

Rendering needs PySide6 (QtSvg); writing .ico and .icns is plain Python, so the PyInstaller spec
can call write_ico / write_icns on any platform without Qt. Both containers hold PNG images,
which Windows (Vista and later) and macOS (10.7 and later) read.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ICONS = ROOT / "resources" / "icons"
NAME = "attention-explorer"
SVG = ICONS / f"{NAME}.svg"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def png_path(size: int, folder: Path = ICONS) -> Path:
    return folder / f"{NAME}-{size}.png"


def render_pngs(svg: Path = SVG, folder: Path = ICONS, sizes=SIZES) -> list[Path]:
    """Render the SVG to one PNG per size with Qt's SVG renderer (antialiased, transparent)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])  # noqa: F841
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"cannot read {svg}")
    out = []
    for size in sizes:
        img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        img.fill(Qt.GlobalColor.transparent)
        p = QPainter(img)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(p)
        p.end()
        path = png_path(size, folder)
        if not img.save(str(path), "PNG"):
            raise SystemExit(f"cannot write {path}")
        out.append(path)
    return out


def _png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    return struct.unpack(">II", data[16:24])


def write_ico(out: Path, sizes=(16, 24, 32, 48, 64, 128, 256), folder: Path = ICONS) -> Path:
    """A Windows .ico holding the PNGs as they are (one directory entry per size)."""
    images = [png_path(s, folder).read_bytes() for s in sizes]
    head = struct.pack("<HHH", 0, 1, len(images))
    offset = 6 + 16 * len(images)
    entries, blobs = b"", b""
    for data in images:
        w, h = _png_size(data)
        # width and height are one byte each; 0 means 256
        entries += struct.pack("<BBBBHHII", w % 256, h % 256, 0, 0, 1, 32, len(data), offset)
        blobs += data
        offset += len(data)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(head + entries + blobs)
    return out


# icns element types that hold PNG data, by pixel size (the @2x types reuse larger images)
ICNS_TYPES = (
    (b"icp4", 16),
    (b"icp5", 32),
    (b"icp6", 64),
    (b"ic07", 128),
    (b"ic08", 256),
    (b"ic09", 512),
    (b"ic11", 32),  # 16@2x
    (b"ic12", 64),  # 32@2x
    (b"ic13", 256),  # 128@2x
    (b"ic14", 512),  # 256@2x
)


def write_icns(out: Path, folder: Path = ICONS) -> Path:
    """A macOS .icns holding the PNGs (big-endian: type, length including the 8-byte header)."""
    body = b""
    for kind, size in ICNS_TYPES:
        data = png_path(size, folder).read_bytes()
        body += kind + struct.pack(">I", len(data) + 8) + data
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"icns" + struct.pack(">I", len(body) + 8) + body)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--check", action="store_true", help="only check that every PNG exists")
    p.add_argument("--ico", metavar="FILE", help="also write a Windows .ico")
    p.add_argument("--icns", metavar="FILE", help="also write a macOS .icns")
    a = p.parse_args(argv)
    if a.check:
        missing = [str(png_path(s)) for s in SIZES if not png_path(s).is_file()]
        for m in missing:
            print(f"missing {m}", file=sys.stderr)
        return 1 if missing else 0
    for path in render_pngs():
        print(path.relative_to(ROOT))
    if a.ico:
        print(write_ico(Path(a.ico)))
    if a.icns:
        print(write_icns(Path(a.icns)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
