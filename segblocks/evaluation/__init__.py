"""Scoring prediction files with the field's evaluation rules, from files alone (no images, no model).

Each function reads a ground-truth and a prediction set in a standard format and returns an
:class:`EvaluationReport`; ``segblocks eval <format>`` prints the same report as a table.
"""

from segblocks.evaluation.coco_panoptic import evaluate_coco_panoptic
from segblocks.evaluation.davis import evaluate_davis
from segblocks.evaluation.instances import evaluate_coco_instances, evaluate_youtube_vis
from segblocks.evaluation.report import EvaluationReport, format_table, write_report_json
from segblocks.evaluation.semantic import evaluate_semantic
from segblocks.evaluation.video_panoptic import evaluate_vpq

__all__ = [
    "EvaluationReport",
    "evaluate_coco_instances",
    "evaluate_coco_panoptic",
    "evaluate_davis",
    "evaluate_semantic",
    "evaluate_vpq",
    "evaluate_youtube_vis",
    "format_table",
    "write_report_json",
]
