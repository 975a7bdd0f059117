"""Regenerate the bundled sample images in resources/samples/.

photo.png      NASA's portrait of astronaut Eileen Collins (public domain), as shipped by
               scikit-image (skimage.data.astronaut), resized to 512×512.
pattern.png    a Siemens star with rings and slanted bars: edges at every orientation (made here).
digit.png      a handwritten-style "3" drawn with strokes, white on black, 112×112 (made here).
checkerboard.png  8×8 squares of 32 px (made here).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parent.parent / "resources" / "samples"


def pattern(size=512):
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) - size / 2 + 0.5
    theta = np.arctan2(y, x)
    r = np.hypot(x, y)
    star = (np.sin(16 * theta) > 0).astype(np.float64)
    img = np.where(r < size * 0.30, star, 0.5)
    rings = ((r // 12) % 2 == 0) & (r >= size * 0.34) & (r < size * 0.48)
    img = np.where(rings, 1.0, img)
    img = np.where((r >= size * 0.30) & (r < size * 0.34), 0.0, img)
    img = (img * 255).astype(np.uint8)
    # slanted bars in the corners
    for i, ang in enumerate((15, 30, 60, 75)):
        cx, cy = [(48, 48), (size - 48, 48), (48, size - 48), (size - 48, size - 48)][i]
        box = cv2.boxPoints(((cx, cy), (70, 14), ang)).astype(np.int32)
        cv2.fillConvexPoly(img, box, 255 if i % 2 == 0 else 0, lineType=cv2.LINE_AA)
    return img


def digit(size=112):
    img = np.zeros((size, size), np.uint8)
    s = size / 28.0
    # a "3": two arcs, slightly irregular like a pen stroke
    pts_top = np.array([[8, 7], [12, 5], [17, 5], [20, 8], [19, 12], [15, 14], [12, 14]], np.float64)
    pts_bot = np.array([[15, 14], [19, 16], [20, 20], [17, 23], [12, 23.5], [8, 21.5]], np.float64)
    for pts in (pts_top, pts_bot):
        cv2.polylines(img, [np.round(pts * s).astype(np.int32)], False, 255, thickness=int(2.6 * s), lineType=cv2.LINE_AA)
    return cv2.GaussianBlur(img, (3, 3), 0)


def checkerboard(n=8, sq=32):
    b = (np.indices((n, n)).sum(axis=0) % 2).astype(np.uint8) * 255
    return np.kron(b, np.ones((sq, sq), np.uint8))


def photo():
    from skimage import data

    img = data.astronaut()
    return cv2.resize(img, (512, 512), interpolation=cv2.INTER_AREA)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(OUT / "pattern.png"), pattern())
    cv2.imwrite(str(OUT / "digit.png"), digit())
    cv2.imwrite(str(OUT / "checkerboard.png"), checkerboard())
    cv2.imwrite(str(OUT / "photo.png"), cv2.cvtColor(photo(), cv2.COLOR_RGB2BGR))
    print("wrote", sorted(p.name for p in OUT.glob("*.png")))


if __name__ == "__main__":
    main()
