"""Post-processing: panoptic, semantic, instance and video results from mask predictions."""
