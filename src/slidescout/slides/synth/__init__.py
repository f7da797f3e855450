"""SynthPath: synthetic H&E whole-slide images with ground truth and MultiPathQA-style questions.

Slides are pyramidal JPEG tiled TIFFs (readable by OpenSlide and pyvips) built lazily with
pyvips, so level 0 is never held in memory. Each slide has lesions whose class (tumor,
lymphocytes, necrosis, normal) shows only at high magnification: at thumbnail scale their mean
colour matches the surrounding tissue.
"""

from slidescout.slides.synth.demo import demo_sample
from slidescout.slides.synth.generator import DEFAULT_SIZE, DEMO_SIZE, SynthSlide, generate_slide
from slidescout.slides.synth.questions import COLUMNS, generate_dataset, slide_questions
from slidescout.slides.synth.textures import CLASSES
from slidescout.slides.synth.truth import LesionTruth, SynthTruth, TissueTruth, load_truth

__all__ = [
    "CLASSES",
    "COLUMNS",
    "DEFAULT_SIZE",
    "DEMO_SIZE",
    "LesionTruth",
    "SynthSlide",
    "SynthTruth",
    "TissueTruth",
    "demo_sample",
    "generate_dataset",
    "generate_slide",
    "load_truth",
    "slide_questions",
]
