"""The learning path: short lessons, each one a setting of the app plus two or three sentences.

A lesson is data. The Learn panel applies it to the window (playground lessons set the kernel
bank and the parameters on the user's current image; inspector lessons open the model
inspector on the demo model and pick a view), and the tests check that every lesson sets
what it promises and that the outputs show the effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Lesson:
    key: str
    title: str
    text: str
    target: str = "playground"          # "playground" | "inspector"
    kernels: tuple[str, ...] = ()       # preset names for the bank (playground)
    conv: dict[str, Any] = field(default_factory=dict)       # ConvSpec fields
    activation: str = "none"
    pool: dict[str, Any] | None = None  # PoolSpec fields, None: no pooling
    magnitude: bool = False             # show the gradient magnitude of the first two kernels
    panel: str | None = None            # a panel to raise: "explain", "weights", "animate"
    inspector: dict[str, Any] = field(default_factory=dict)  # {"view": ..., "layer": ...}
    expect: str = ""                    # what the user should see (tests check it)


LESSONS: tuple[Lesson, ...] = (
    Lesson("weighted-sum", "A filter is a weighted sum",
           "Every output pixel is the sum of the input pixels under the kernel, each multiplied by its weight. "
           "A 3×3 box blur gives every neighbour the weight 1/9, so each output pixel is the local mean. "
           "Click any output pixel: the Explain panel shows the nine products and their sum.",
           kernels=("box-3",), conv={"padding": 1}, panel="explain",
           expect="the output is a blurred copy of the input with the same size"),
    Lesson("edges-vertical-horizontal", "Vertical vs horizontal edges",
           "Sobel x weighs the right column against the left one, so it answers to vertical edges; Sobel y "
           "does the same for rows and answers to horizontal edges. Their gradient magnitude √(gx² + gy²) "
           "finds edges of every direction.",
           kernels=("sobel-x", "sobel-y"), conv={"padding": 1}, magnitude=True,
           expect="two maps: bright on vertical edges, bright on horizontal edges"),
    Lesson("oriented-bank", "An oriented filter bank",
           "Twelve filters — first and second derivatives of a stretched Gaussian at six angles — each "
           "answer to edges and bars of one orientation. The first layer of a trained CNN learns "
           "filters much like these.",
           kernels=("oriented-bank",), conv={"padding": "same"},
           expect="twelve maps, each lighting up a different edge direction"),
    Lesson("stride", "Stride shrinks the map",
           "With stride 2 the kernel jumps two pixels at a time, so the output has half the rows and half the "
           "columns. Read the formula under the output: the division by the stride is where the size goes.",
           kernels=("sobel-x",), conv={"padding": 1, "stride": 2},
           expect="the output shape is half the input shape"),
    Lesson("padding", "Padding keeps the size",
           "A 5×5 kernel does not fit at the border, so without padding the map loses 2 pixels on every side. "
           "'same' padding adds a frame of zeros (or reflected pixels) so the output keeps the input's size.",
           kernels=("gaussian-5",), conv={"padding": "same", "padding_mode": "reflect"},
           expect="the output shape equals the input shape"),
    Lesson("max-vs-avg-pool", "Max vs average pooling",
           "Pooling shrinks a map by summarising each 2×2 window: max pooling keeps the strongest answer "
           "(an edge survives), average pooling keeps the mean (an edge fades). Switch the pooling type "
           "to compare; click a pooled pixel to see which value won.",
           kernels=("sobel-x",), conv={"padding": 1}, activation="relu", pool={"kind": "max", "size": 2},
           panel="explain", expect="the pooled map has half the size and keeps the bright edges"),
    Lesson("relu", "ReLU zeroes the negatives",
           "Sobel x answers +1 to dark-to-bright edges and −1 to bright-to-dark ones (blue in the conv view). "
           "ReLU keeps the positive answers and sets every negative one to 0, so only one side of each edge "
           "survives.",
           kernels=("sobel-x",), conv={"padding": 1}, activation="relu",
           expect="the activated map has no negative values"),
    Lesson("weight-sharing", "Weight sharing",
           "The same 9 weights slide over every position of the image. A dense layer that maps this image to "
           "the same output size would need a separate weight for every input–output pair: the Weight sharing "
           "panel shows how many more.",
           kernels=("sobel-x",), conv={"padding": 1}, panel="weights",
           expect="the weight sharing panel shows 10 parameters against billions"),
    Lesson("correlation-vs-convolution", "Cross-correlation vs convolution",
           "Deep learning's 'convolution' is really cross-correlation: the kernel is not flipped. True "
           "convolution rotates it by 180° first. For a symmetric kernel they agree; for Sobel x the flip "
           "swaps the sign of the edges.",
           kernels=("sobel-x",), conv={"padding": 1, "flip": True},
           expect="the map is the negative of the unflipped Sobel x map"),
    Lesson("hierarchy", "Early layers see edges, deeper layers see parts",
           "Open the demo digit model and look at the first convolution: its channels respond to strokes "
           "at different angles, like the oriented bank. The last convolution's channels respond to "
           "combinations of strokes — loops, corners, whole parts of a digit.",
           target="inspector", inspector={"view": "grid", "layer": "first_conv", "then_layer": "last_conv"},
           expect="the first conv layer's channels look like edge maps"),
    Lesson("pyramid", "The pyramid: smaller maps, more channels",
           "Layer by layer, pooling and strides shrink the maps while the number of channels grows: the "
           "network trades where for what. The chart under the layer table shows both.",
           target="inspector", inspector={"view": "layers"},
           expect="spatial size falls and channels rise through the layers"),
    Lesson("receptive-field", "The receptive field grows with depth",
           "A unit in the first layer sees a 3×3 patch; each further convolution or pooling widens what a unit "
           "sees. Click a unit in a deep layer to see its receptive field drawn on the input.",
           target="inspector", inspector={"view": "receptive_field", "layer": "last_conv"},
           expect="a deep unit's box covers most of the digit"),
    Lesson("grad-cam", "Grad-CAM: where the model looked",
           "Grad-CAM weighs the last convolution's channels by how much they raise the predicted class. "
           "The weighted sum is overlaid on the input: warm colours mark where the evidence for the class was.",
           target="inspector", inspector={"view": "cam"},
           expect="a heatmap over the digit's strokes"),
    Lesson("filters-learn-themselves", "Filters learn themselves",
           "Nobody designs the first layer of a trained CNN: training starts from random weights and nudges "
           "them, step by step, towards fewer mistakes. Open Model ▸ Train a CNN…, train SimpleCNN on the "
           "digits and watch its 32 first-layer kernels turn from noise into edge and blob detectors. Then "
           "press 'Send kernels to the playground': the learned filters join these hand-made Sobel kernels "
           "on the same image.",
           kernels=("sobel-x", "sobel-y"), conv={"padding": 1}, panel="train",
           expect="learned kernels next to Sobel x and y in the bank, some answering to edges like them"),
    Lesson("what-a-channel-looks-for", "What a channel looks for, layer by layer",
           "Open Model ▸ What a channel looks for… and press Visualize every channel: each picture is an input "
           "optimized until it excites one channel as much as it can. The first convolution's channels ask for "
           "strokes and edges at one angle; pick the last convolution and they ask for loops, corners and "
           "pieces of digits.",
           target="inspector", inspector={"view": "grid", "layer": "first_conv", "featureviz": "featviz"},
           expect="every channel's picture excites it more than any natural image does"),
    Lesson("a-change-you-cannot-see", "A change you cannot see",
           "Move every pixel of a digit by at most 16 grey levels, each in the direction that hurts the model "
           "most, and the model reads another digit. Open Model ▸ What a channel looks for…, tab Adversarial, "
           "and press Attack: the bar chart shows, layer by layer, how far the changed input's activations "
           "drift from the clean ones.",
           target="inspector", inspector={"view": "grid", "layer": "last_conv", "featureviz": "adversarial"},
           expect="the prediction changes, and the drift grows from the first layer to the last"),
)


def lesson(key: str) -> Lesson:
    for les in LESSONS:
        if les.key == key:
            return les
    raise KeyError(f"no lesson '{key}'; lessons: {', '.join(x.key for x in LESSONS)}")


def playground_request(les: Lesson, channels: str = "gray"):
    """The PipelineRequest a playground lesson sets up (kernels flattened from banks)."""
    from .conv import ActivationSpec, ConvSpec, PipelineRequest, PoolSpec
    from .kernels import preset

    if les.target != "playground":
        raise ValueError(f"lesson '{les.key}' is an inspector lesson")
    kernels = tuple(k for name in les.kernels for k in preset(name).kernels)
    conv = ConvSpec(channels=channels, **les.conv)
    pool = PoolSpec(**les.pool) if les.pool else None
    return PipelineRequest(kernels, conv, ActivationSpec(les.activation), pool,
                           magnitude_pair=(0, 1) if les.magnitude else None)
