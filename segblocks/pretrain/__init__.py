"""Recipes that pretrain the shapes world's tiny foundation models (a tiny CLIP and a tiny SAM).

They keep the real architectures (open_clip's CLIP, segment_anything's Sam) so the same backbone
code loads them and real weights; ``segblocks train shapes-clip`` / ``shapes-sam`` reproduce them.
"""
