"""Metrics: PQ, mIoU, mask AP, J&F, NoC / 1-IoU, video metrics."""
