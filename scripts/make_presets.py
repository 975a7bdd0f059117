"""Regenerate resources/kernels/presets.json (the bundled kernel presets).

Run: python scripts/make_presets.py. The file is versioned JSON; the app only reads it.
The oriented bank follows the Leung-Malik idea: first and second derivatives of an
anisotropic Gaussian (sigma_x = 3 sigma_y) at 6 orientations, each made zero-mean and
L1-normalised so every filter gives responses of comparable size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "resources" / "kernels" / "presets.json"


def k(name, title, group, weights, divisor=1, description=""):
    d = {"name": name, "title": title, "group": group, "weights": weights, "description": description}
    if divisor != 1:
        d["divisor"] = divisor
    return d


def oriented_bank(size=7, sigma=1.0, n_orient=6):
    half = size // 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    kernels = []
    for order in (1, 2):
        for i in range(n_orient):
            theta = np.pi * i / n_orient
            # rotate coordinates: u across the edge, v along it
            u = x * np.cos(theta) + y * np.sin(theta)
            v = -x * np.sin(theta) + y * np.cos(theta)
            su, sv = sigma, 3 * sigma
            g = np.exp(-(u ** 2) / (2 * su ** 2) - (v ** 2) / (2 * sv ** 2))
            if order == 1:
                f = -u / su ** 2 * g
            else:
                f = (u ** 2 / su ** 4 - 1 / su ** 2) * g
            f -= f.mean()
            f /= np.abs(f).sum()
            deg = int(round(np.degrees(theta)))
            kernels.append({"name": f"lm-d{order}-{deg}",
                            "description": f"{'1st' if order == 1 else '2nd'} derivative of Gaussian at {deg}°",
                            "weights": np.round(f, 6).tolist()})
    return kernels


def main():
    b5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])
    unsharp = (-b5).tolist()
    unsharp[2][2] = 476
    presets = [
        k("identity", "Identity", "Basic", [[0, 0, 0], [0, 1, 0], [0, 0, 0]], description="Copies the image: the output pixel is the input pixel."),
        k("box-3", "Box blur 3×3", "Blur", [[1] * 3] * 3, 9, "The mean of the 3×3 neighbourhood."),
        k("box-5", "Box blur 5×5", "Blur", [[1] * 5] * 5, 25, "The mean of the 5×5 neighbourhood."),
        k("gaussian-3", "Gaussian 3×3", "Blur", [[1, 2, 1], [2, 4, 2], [1, 2, 1]], 16, "A weighted mean: near pixels count more."),
        k("gaussian-5", "Gaussian 5×5", "Blur", b5.tolist(), 256, "Binomial approximation of a Gaussian, sigma ≈ 1."),
        k("motion-blur", "Motion blur", "Blur", np.eye(5, dtype=int).tolist(), 5, "Averages along a diagonal line, like a camera moving."),
        k("sharpen", "Sharpen", "Enhance", [[0, -1, 0], [-1, 5, -1], [0, -1, 0]], description="Identity plus a Laplacian: boosts local contrast."),
        k("unsharp-5", "Unsharp mask 5×5", "Enhance", unsharp, 256, "Image plus (image − Gaussian blur)."),
        k("emboss", "Emboss", "Enhance", [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], description="Lights edges from the bottom right."),
        k("outline", "Outline", "Edges", [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], description="Responds wherever a pixel differs from its neighbours."),
        k("sobel-x", "Sobel x", "Edges", [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], description="Horizontal gradient: finds vertical edges."),
        k("sobel-y", "Sobel y", "Edges", [[-1, -2, -1], [0, 0, 0], [1, 2, 1]], description="Vertical gradient: finds horizontal edges."),
        k("prewitt-x", "Prewitt x", "Edges", [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], description="Horizontal gradient with equal row weights."),
        k("prewitt-y", "Prewitt y", "Edges", [[-1, -1, -1], [0, 0, 0], [1, 1, 1]], description="Vertical gradient with equal column weights."),
        k("scharr-x", "Scharr x", "Edges", [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]], description="Horizontal gradient, better rotational symmetry than Sobel."),
        k("scharr-y", "Scharr y", "Edges", [[-3, -10, -3], [0, 0, 0], [3, 10, 3]], description="Vertical gradient, better rotational symmetry than Sobel."),
        k("laplacian-4", "Laplacian (4-neighbour)", "Edges", [[0, 1, 0], [1, -4, 1], [0, 1, 0]], description="Second derivative: zero on flat areas and ramps."),
        k("laplacian-8", "Laplacian (8-neighbour)", "Edges", [[1, 1, 1], [1, -8, 1], [1, 1, 1]], description="Second derivative including diagonals."),
        k("log-5", "Laplacian of Gaussian 5×5", "Edges", [[0, 0, -1, 0, 0], [0, -1, -2, -1, 0], [-1, -2, 16, -2, -1], [0, -1, -2, -1, 0], [0, 0, -1, 0, 0]], description="Blur then second derivative: blob and edge detector."),
    ]
    banks = [
        {"name": "sobel-pair", "title": "Sobel x + y (gradient pair)", "group": "Banks",
         "kernels": [{"name": "sobel-x", "weights": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]},
                     {"name": "sobel-y", "weights": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]}]},
        {"name": "oriented-bank", "title": "Oriented bank (Leung-Malik, 12 filters)", "group": "Banks",
         "kernels": oriented_bank()},
    ]
    data = {"schema": "cnnviz.kernels", "version": 1,
            "comment": "Generated by scripts/make_presets.py — edit that script, not this file.",
            "presets": presets + banks}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(presets)} presets and {len(banks)} banks to {OUT}")


if __name__ == "__main__":
    main()
