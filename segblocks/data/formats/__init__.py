"""Real dataset formats: readers and writers for COCO panoptic, COCO instances (and results),
ADE20K-style semantic PNGs, YouTube-VIS and DAVIS, around format-neutral records.

Readers check the annotation files when called and decode images when an item is read (or, with
``images=False`` / ``frames=False``, only the annotations, as the field's evaluators do); every
inconsistency (missing file, malformed JSON, an id in a PNG without segment info, a mask of the
wrong size, unknown ids) raises ``FileNotFoundError`` or :class:`DatasetFormatError` naming the file.
Writers check every record before an existing file is replaced: they write temporary files and
rename them at the end, so a failed write leaves the dataset as it was.
"""

from segblocks.data.formats._io import DatasetFormatError
from segblocks.data.formats.ade20k import IGNORE_INDEX, read_ade20k, write_ade20k
from segblocks.data.formats.coco_instances import (
    CocoResults,
    read_coco_instances,
    read_coco_results,
    write_coco_instances,
    write_coco_results,
)
from segblocks.data.formats.coco_panoptic import read_coco_panoptic, write_coco_panoptic
from segblocks.data.formats.coco_panoptic_results import PanopticPredictions, read_coco_panoptic_results
from segblocks.data.formats.dataset import RecordDataset
from segblocks.data.formats.davis import read_davis, write_davis
from segblocks.data.formats.records import (
    CategoryRecord,
    InstanceRecord,
    PanopticRecord,
    PanopticSegment,
    SemanticRecord,
    VideoInstanceRecord,
    VideoObjectRecord,
)
from segblocks.data.formats.shapes_export import (
    FORMATS,
    export_shapes_world,
    shapes_categories,
    shapes_dataset,
    to_instance_record,
    to_panoptic_record,
    to_semantic_record,
    to_video_instance_record,
    to_video_object_record,
)
from segblocks.data.formats.video_results import (
    VideoPanopticPrediction,
    write_davis_results,
    write_vipseg_results,
)
from segblocks.data.formats.youtube_vis import read_youtube_vis, write_youtube_vis
from segblocks.data.formats.youtube_vis_results import (
    VisResults,
    group_youtube_vis_results,
    read_youtube_vis_results,
    write_youtube_vis_results,
)

__all__ = [
    "FORMATS",
    "IGNORE_INDEX",
    "CategoryRecord",
    "CocoResults",
    "DatasetFormatError",
    "InstanceRecord",
    "PanopticPredictions",
    "PanopticRecord",
    "PanopticSegment",
    "RecordDataset",
    "SemanticRecord",
    "VideoInstanceRecord",
    "VideoObjectRecord",
    "VideoPanopticPrediction",
    "VisResults",
    "export_shapes_world",
    "group_youtube_vis_results",
    "read_ade20k",
    "read_coco_instances",
    "read_coco_panoptic",
    "read_coco_panoptic_results",
    "read_coco_results",
    "read_davis",
    "read_youtube_vis",
    "read_youtube_vis_results",
    "shapes_categories",
    "shapes_dataset",
    "to_instance_record",
    "to_panoptic_record",
    "to_semantic_record",
    "to_video_instance_record",
    "to_video_object_record",
    "write_ade20k",
    "write_coco_instances",
    "write_coco_panoptic",
    "write_coco_results",
    "write_davis",
    "write_davis_results",
    "write_vipseg_results",
    "write_youtube_vis",
    "write_youtube_vis_results",
]
